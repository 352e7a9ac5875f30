import type { Knex } from 'knex';

// Link quality per robot, as the gateway measures it from each HEALTHCHECK sent on the robot's bus to
// its answer: the figures of its sliding window and whether its link is degraded (with the moment a
// threshold was first crossed, for the hold), one row per robot; and five-minute buckets for the
// charts, kept a day. A robot or group may set its own thresholds, like its health-check policy.
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('device_links', (t) => {
    t.uuid('device_id').primary().references('id').inTable('devices').onDelete('CASCADE');
    t.float('p50_ms');
    t.float('p95_ms');
    t.float('max_ms');
    t.float('jitter_ms');
    t.float('miss_share').notNullable().defaultTo(0);
    t.integer('answered').notNullable().defaultTo(0);
    t.integer('missed').notNullable().defaultTo(0);
    t.timestamp('measured_at', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.text('state').notNullable().defaultTo('ok');
    t.timestamp('state_since', { useTz: true }).notNullable().defaultTo(knex.fn.now());
    t.timestamp('crossing_since', { useTz: true });
    t.index(['p95_ms'], 'device_links_p95');
  });
  await knex.raw(`CREATE INDEX device_links_degraded ON device_links (device_id) WHERE state = 'degraded'`);
  await knex.schema.createTable('link_buckets', (t) => {
    t.uuid('device_id').notNullable().references('id').inTable('devices').onDelete('CASCADE');
    t.timestamp('starts_at', { useTz: true }).notNullable();
    t.float('p50_ms');
    t.float('p95_ms');
    t.float('max_ms');
    t.integer('answered').notNullable();
    t.integer('missed').notNullable();
    t.primary(['device_id', 'starts_at']);
    t.index(['starts_at'], 'link_buckets_starts_at');
  });
  for (const table of ['devices', 'device_groups'])
    await knex.schema.alterTable(table, (t) => {
      t.integer('link_max_p95_ms');
      t.float('link_max_miss_share');
    });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of ['devices', 'device_groups'])
    await knex.schema.alterTable(table, (t) => {
      t.dropColumn('link_max_p95_ms');
      t.dropColumn('link_max_miss_share');
    });
  await knex.schema.dropTable('link_buckets');
  await knex.schema.dropTable('device_links');
}
