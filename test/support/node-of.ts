/**
 * A data-plane node (in process, `startNode`) connected to a test control plane, with the defaults tests
 * share: an ephemeral port, no state dir, its log captured, ready (`/readyz`) when returned.
 */
import { createLogger } from '../../data-plane/log.js';
import { startNode, type DataPlaneNode, type NodeOptions } from '../../data-plane/node/node.js';
import type { TestControlPlane } from './control-plane.js';
import { LogCapture } from './log-capture.js';
import { waitFor } from './wait.js';

export async function startNodeOf(cp: TestControlPlane, options: Partial<NodeOptions> = {}): Promise<DataPlaneNode> {
  const node = await startNode({
    controlPlaneUrl: cp.url,
    nodeToken: cp.cp.nodeToken,
    port: 0,
    stateDir: null,
    logger: createLogger('test-node', { destination: new LogCapture() }),
    ...options,
  });
  await waitFor(async () => (await fetch(`${node.url}/readyz`)).ok, { what: 'node ready' });
  return node;
}
