/**
 * DataPlaneNode in GraphQL: read-only status of the nodes that reported in (applied version, missing env
 * vars, last rejected snapshot, health). Nodes write this through the node routes, never through GraphQL.
 */
import { listNodes, nodeCursor, type DataPlaneNode } from '../../repos/nodes.js';
import { builder } from '../builder.js';
import { resolvePage } from '../connections.js';

const MissingEnvRef = builder.objectRef<DataPlaneNode['missingEnv'][number]>('MissingEnv').implement({
  description: 'An env.NAME reference this node could not resolve, and the servers it makes unavailable there.',
  fields: (t) => ({
    name: t.exposeString('name'),
    servers: t.exposeStringList('servers'),
  }),
});

const SnapshotRejectionRef = builder.objectRef<NonNullable<DataPlaneNode['lastRejection']>>('SnapshotRejection').implement({
  fields: (t) => ({
    code: t.exposeString('code'),
    message: t.exposeString('message'),
    at: t.field({ type: 'DateTime', resolve: (r) => r.at }),
  }),
});

const DataPlaneNodeRef = builder.objectRef<DataPlaneNode>('DataPlaneNode').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    lastSeenAt: t.field({ type: 'DateTime', resolve: (n) => n.lastSeenAt }),
    appliedVersion: t.exposeInt('appliedVersion', { nullable: true }),
    missingEnv: t.field({ type: [MissingEnvRef], resolve: (n) => n.missingEnv }),
    lastRejection: t.field({ type: SnapshotRejectionRef, nullable: true, resolve: (n) => n.lastRejection }),
    health: t.exposeString('health', { description: 'OK, DEGRADED, or UNKNOWN before the first report' }),
    connected: t.exposeBoolean('connected', { description: 'Whether the node has a snapshot stream open now' }),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (n) => n.startedAt }),
  }),
});

const DataPlaneNodeConnection = builder.connectionObject(
  { type: DataPlaneNodeRef, name: 'DataPlaneNodeConnection' },
  { name: 'DataPlaneNodeEdge' },
);

builder.queryFields((t) => ({
  nodes: t.connection(
    { type: DataPlaneNodeRef, resolve: (_root, args, ctx) => resolvePage(args, (page) => listNodes(ctx.db, page), nodeCursor) },
    DataPlaneNodeConnection,
  ),
}));
