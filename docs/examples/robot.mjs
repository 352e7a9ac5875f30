// A robot on its own bus: answers each HEALTHCHECK with its token and hears its commands.
// MOTH_URL=ws://localhost:8276 BUS_PATH=<channels.deviceManagement> TOKEN=<token> node robot.mjs
import WebSocket from 'ws';

const { MOTH_URL, BUS_PATH, TOKEN } = process.env;

function join() {
  const ws = new WebSocket(new URL(BUS_PATH, MOTH_URL));
  ws.on('open', () => console.log('on my bus'));
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data.toString('utf8'));
    } catch {
      return; // not for us
    }
    // JSON goes as a binary frame: Moth keeps a text frame and replays it to every later joiner.
    if (msg.type === 'HEALTHCHECK') ws.send(Buffer.from(JSON.stringify({ type: 'HEARTBEAT', token: TOKEN })));
    else console.log(msg.type, msg.code ?? msg.task_id ?? '');
  });
  // Pings keep the session past Moth's 30 s idle timeout; Moth drops a session without a word.
  const ping = setInterval(() => ws.readyState === WebSocket.OPEN && ws.ping(), 10_000);
  ws.on('error', () => {});
  ws.on('close', () => {
    clearInterval(ping);
    setTimeout(join, 1000);
  });
}
join();
