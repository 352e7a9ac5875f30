import type { HubOptions } from '../../src/moth/hub';
import { ThreadedMothHub } from '../../src/moth/hub-thread';
import { createMantisSimulator, createTgdmSimulator } from '../../src/integrations/simulator';

/**
 * What the service talks to besides Postgres and Redis: the Moth hub and the TGDM and Mantis
 * simulators, each on a free port. The hub loses frames exactly where Moth Lite does (one 20-slot
 * ring per track, readers polling every 1 ms by the frames' arrival times): no leniency for the
 * tests. On a thread of its own, so this busy process's stalls do not bunch paced frames into
 * bursts Moth would never see. It can be stopped and started again on the same port.
 */
export async function startMothStack(hubOptions: HubOptions = {}) {
  let hub = new ThreadedMothHub(hubOptions);
  const mothUrl = await hub.start();
  let hubPort = hub.port;
  const tgdm = createTgdmSimulator();
  const mantis = createMantisSimulator();
  const [tgdmUrl, mantisUrl] = [await tgdm.start(), await mantis.start()];
  return {
    urls: { MOTH_URL: mothUrl, TGDM_URL: tgdmUrl, MANTIS_URL: mantisUrl },
    tgdm,
    mantis,
    get hub() {
      return hub;
    },
    /** Every connection drops, as when Moth crashes. */
    async stopHub() {
      hubPort = hub.port || hubPort;
      await hub.stop();
    },
    async startHub() {
      hub = new ThreadedMothHub({ ...hubOptions, port: hubPort });
      await hub.start();
    },
    async stop() {
      await hub.stop();
      await tgdm.stop();
      await mantis.stop();
    },
  };
}
