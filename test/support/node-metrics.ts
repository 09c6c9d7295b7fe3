/**
 * Nodes refuse `/metrics` without their GATEHOUSE_METRICS_TOKEN: every test node is given this one, and
 * tests scrape with it.
 */
export const TEST_METRICS_TOKEN = 'test-metrics-token';

/** The node's Prometheus text, scraped with the test token (throws unless 200). */
export async function scrapeNodeMetrics(nodeUrl: string): Promise<string> {
  const res = await fetch(`${nodeUrl}/metrics`, { headers: { authorization: `Bearer ${TEST_METRICS_TOKEN}` } });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${nodeUrl}/metrics: HTTP ${res.status} ${text.slice(0, 200)}`);
  return text;
}
