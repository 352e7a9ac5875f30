import { addScrapeGauges, createMetrics } from '../../src/metrics';

/**
 * Every metric name the service's roles export (their own and the gauges read at scrape time), a
 * histogram with its `_bucket`, `_sum` and `_count` series when asked.
 */
export async function exportedMetricNames(options: { histogramSeries?: boolean } = {}): Promise<string[]> {
  const metrics = createMetrics('names', false);
  addScrapeGauges(metrics, {
    deviceCounts: async () => ({}),
    degradedLinks: async () => 0,
    queueCounts: async () => [],
    eventLag: async () => ({ numbering: 0, moth: 0 }),
    webhookCircuits: async () => ({ closed: 0, open: 0, 'half-open': 0 }),
  });
  return (await metrics.registry.getMetricsAsJSON()).flatMap((m) =>
    options.histogramSeries && String(m.type) === 'histogram'
      ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`]
      : [m.name],
  );
}
