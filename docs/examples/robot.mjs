// A whole robot on the robot SDK: registers once (its credentials kept in amr-1.json), answers each
// HEALTHCHECK on its own bus, takes each task command once, comes back by itself when Moth drops it.
import { Robot, fileCursor, loadOrRegister } from '@rollcall/robot';

const api = process.env.ROLLCALL_API ?? 'http://localhost:3000';
const credentials = await loadOrRegister('./amr-1.json', {
  api,
  secret: process.env.DEVICE_SECRET_KEY,
  name: 'amr-1',
  actions: ['PATROL'],
});
// Moth's address comes with the registration (`channels.moth`); `moth: 'ws://...'` overrides it.
const robot = new Robot({ api, credentials, commandsCursor: fileCursor('./amr-1.seq') });

robot.on('open', () => console.log('on my bus'));
robot.on('refused', (r) => console.error('refused:', r.code)); // e.g. UNKNOWN_TOKEN after a rotation
robot.on('command', (c) => {
  console.log(c.type, c.action_name, c.task_id);
  if (c.type === 'TASK_REGISTERED')
    robot
      .report(c.task_id, 'start')
      .then(() => robot.report(c.task_id, 'complete'))
      .catch(console.error);
});
robot.start();
// Ctrl-C: a planned goodbye, disconnected at once (PLANNED) instead of after its missed rounds.
process.once('SIGINT', () => robot.goodbye().then(() => process.exit(0)));
