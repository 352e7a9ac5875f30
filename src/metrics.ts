import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Detection delay buckets, seconds: the metric's and the fleet page's histogram. */
export const DETECTION_BUCKETS = [1, 2, 5, 10, 15, 20, 30, 60, 120, 300, 600] as const;

/** The service's metrics; each process (role) has its own registry and exposes it. */
export function createMetrics(role: string, withDefaults = false) {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  if (withDefaults) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    rounds: new Counter({
      name: 'rollcall_rounds_total',
      help: 'Health-check rounds closed, by outcome (valid, void, held)',
      labelNames: ['outcome'],
      registers,
    }),
    roundTicksSkipped: new Counter({
      name: 'rollcall_round_ticks_skipped_total',
      help: "Round scheduler ticks that issued no round: late (run past half an interval, so robots never get rounds in a burst) or too soon after the last round; each leaves a longer wait for the robots' next HEALTHCHECK",
      labelNames: ['why'],
      registers,
    }),
    selfSuspicions: new Counter({
      name: 'rollcall_gateway_self_suspicions_total',
      help: 'Times this gateway found itself behind its buses (loop: its event loop late; backpressure: reading paused; write: heartbeats written late); its rounds then are void, never a miss',
      labelNames: ['reason'],
      registers,
    }),
    shardRoundsVoidedLate: new Counter({
      name: 'rollcall_shard_rounds_voided_late_total',
      help: 'Shard-rounds valid at their close but void at their evaluation: the gateway holding the shard could not vouch it had read and written its buses through the round',
      registers,
    }),
    liveWatchersCut: new Counter({
      name: 'rollcall_live_watchers_cut_total',
      help: 'Live-stream (SSE) watchers cut off for not reading fast enough; they resume from their last id',
      registers,
    }),
    heartbeats: new Counter({
      name: 'rollcall_heartbeats_total',
      help: 'Frames received on the device channel, by result',
      labelNames: ['result'],
      registers,
    }),
    authFailures: new Counter({
      name: 'rollcall_auth_failures_total',
      help: 'Credentials refused, by surface (registration secret, API token, operator pages)',
      labelNames: ['surface'],
      registers,
    }),
    textFrameHeartbeats: new Counter({
      name: 'rollcall_text_frame_heartbeats_total',
      help: 'Heartbeats accepted in a text frame: Moth replays a text frame, token included, to later joiners',
      registers,
    }),
    shardsHeld: new Gauge({
      name: 'rollcall_gateway_shards_held',
      help: 'Shards whose device buses this gateway holds',
      registers,
    }),
    busSessions: new Gauge({
      name: 'rollcall_gateway_bus_sessions',
      help: 'Device-bus Moth sessions of this gateway, by state (open, down)',
      labelNames: ['state'],
      registers,
    }),
    busesLost: new Counter({
      name: 'rollcall_gateway_buses_lost_total',
      help: "Device buses whose session this gateway lost (rounds then are void for that bus's devices alone)",
      registers,
    }),
    busesUnstable: new Counter({
      name: 'rollcall_buses_unstable_total',
      help: 'Device buses marked unstable: lost 3 times within 10 minutes (DEVICE_BUS_UNSTABLE)',
      registers,
    }),
    disconnects: new Counter({
      name: 'rollcall_disconnects_total',
      help: 'Sessions ended by the gateway and worker roles, by reason (MISSED_HEARTBEATS: failures; PLANNED: a GOODBYE)',
      labelNames: ['reason'],
      registers,
    }),
    transitions: new Counter({
      name: 'rollcall_transitions_total',
      help: 'Device status transitions, by target status',
      labelNames: ['to'],
      registers,
    }),
    eventsPublished: new Counter({
      name: 'rollcall_events_published_total',
      help: 'Outbox events sent to Moth, by channel',
      labelNames: ['channel'],
      registers,
    }),
    effects: new Counter({
      name: 'rollcall_effects_total',
      help: 'Side effects finished, by effect and outcome',
      labelNames: ['effect', 'outcome'],
      registers,
    }),
    detectionSeconds: new Histogram({
      name: 'rollcall_detection_seconds',
      help: 'From the last heartbeat of a device to the decision that it is disconnected',
      buckets: [...DETECTION_BUCKETS],
      registers,
    }),
    linkLatencySeconds: new Histogram({
      name: 'rollcall_link_latency_seconds',
      help: "From a HEALTHCHECK sent on a robot's bus to its answer (every robot of this gateway's shards)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    linkChanges: new Counter({
      name: 'rollcall_link_changes_total',
      help: 'Robot links that changed state (degraded: DEVICE_LINK_DEGRADED; ok: DEVICE_LINK_RECOVERED)',
      labelNames: ['to'],
      registers,
    }),
    effectSeconds: new Histogram({
      name: 'rollcall_effect_seconds',
      help: 'From the disconnect decision to the effect done',
      labelNames: ['effect'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
      registers,
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Gauges read at scrape time: devices by status, the events' lag and the webhooks' circuits
 * (Postgres), and jobs by queue and state (BullMQ).
 * Added once per registry, by whichever role holds the data sources.
 */
export function addScrapeGauges(
  metrics: Metrics,
  sources: {
    deviceCounts: () => Promise<Record<string, number>>;
    degradedLinks: () => Promise<number>;
    queueCounts: () => Promise<{ queue: string; counts: Record<string, number> }[]>;
    eventLag: () => Promise<{ numbering: number; moth: number }>;
    webhookCircuits: () => Promise<Record<'closed' | 'open' | 'half-open', number>>;
  },
): void {
  const registers = [metrics.registry];
  if (metrics.registry.getSingleMetric('rollcall_devices')) return;
  new Gauge({
    name: 'rollcall_devices',
    help: 'Registered devices by status',
    labelNames: ['status'],
    registers,
    async collect() {
      this.reset();
      const counts = await sources.deviceCounts();
      for (const status of ['CONNECTED', 'DISCONNECTED']) this.set({ status }, counts[status] ?? 0);
    },
  });
  new Gauge({
    name: 'rollcall_links_degraded',
    help: 'Connected robots whose link is degraded (DEVICE_LINK_DEGRADED, not yet recovered)',
    registers,
    async collect() {
      this.set(await sources.degradedLinks());
    },
  });
  new Gauge({
    name: 'rollcall_event_lag_seconds',
    help: 'Age of the oldest event waiting, by stage (numbering: not yet numbered; moth: a client event numbered but not yet on Moth); 0 when none waits',
    labelNames: ['stage'],
    registers,
    async collect() {
      const lag = await sources.eventLag();
      this.set({ stage: 'numbering' }, lag.numbering);
      this.set({ stage: 'moth' }, lag.moth);
    },
  });
  new Gauge({
    name: 'rollcall_webhooks',
    help: 'Webhooks by circuit state (open: nothing is sent until its cool-down ends)',
    labelNames: ['circuit'],
    registers,
    async collect() {
      for (const [circuit, n] of Object.entries(await sources.webhookCircuits())) this.set({ circuit }, n);
    },
  });
  new Gauge({
    name: 'rollcall_queue_jobs',
    help: 'BullMQ jobs by queue and state',
    labelNames: ['queue', 'state'],
    registers,
    async collect() {
      this.reset();
      for (const { queue, counts } of await sources.queueCounts()) {
        for (const [state, n] of Object.entries(counts)) this.set({ queue, state }, n);
      }
    },
  });
}
