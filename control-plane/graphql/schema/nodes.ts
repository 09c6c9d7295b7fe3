/**
 * DataPlaneNode in GraphQL: status of the nodes the control plane knows (applied version, missing env vars,
 * last rejected snapshot, health, CONNECTED/DISCONNECTED with last seen) and their identity: `enrollNode`
 * issues a one-time enrollment token, `approveNode` approves a node that presented its keys (by the
 * fingerprint it logged), `revokeNode` cuts one off (its streams close and the data key rotates), and
 * `forgetNode` removes a node that went away. Nodes write their reports through the node routes, never here.
 */
import {
  approveNode,
  fingerprintOf,
  forgetNode,
  issueEnrollmentToken,
  listNodes,
  nodeCursor,
  revokeNode,
  type DataPlaneNode,
} from '../../repos/nodes.js';
import { builder } from '../builder.js';
import { resolvePage } from '../connections.js';
import type { UserErrorShape } from '../errors.js';
import { runMutation } from '../mutation.js';
import { entityPayload, UserErrorRef } from './common.js';

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

const NodeStateEnum = builder.enumType('NodeState', {
  values: {
    CONNECTED: { description: 'A snapshot stream is open and a control-plane replica vouched for it within the last minute' },
    DISCONNECTED: { description: 'No stream open (or its replica went away); see lastSeenAt' },
  } as const,
});

const NodeEnrollmentEnum = builder.enumType('NodeEnrollment', {
  values: {
    SHARED_TOKEN: { description: 'Authenticated by the shared node token (weaker: no identity of its own)' },
    PENDING: { description: 'Presented its keys; awaits approveNode' },
    APPROVED: { description: 'Enrolled keys; data keys are wrapped for its own key only' },
    REVOKED: { description: 'Cut off: nothing more is sent to it' },
  } as const,
});

export const DataPlaneNodeRef = builder.objectRef<DataPlaneNode>('DataPlaneNode').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    state: t.field({ type: NodeStateEnum, resolve: (n) => n.state }),
    lastSeenAt: t.field({ type: 'DateTime', resolve: (n) => n.lastSeenAt }),
    appliedVersion: t.exposeInt('appliedVersion', { nullable: true }),
    missingEnv: t.field({ type: [MissingEnvRef], resolve: (n) => n.missingEnv }),
    lastRejection: t.field({ type: SnapshotRejectionRef, nullable: true, resolve: (n) => n.lastRejection }),
    health: t.exposeString('health', { description: 'OK, DEGRADED, or UNKNOWN before the first report (as last reported: see state)' }),
    connected: t.boolean({ description: 'Whether state is CONNECTED', resolve: (n) => n.state === 'CONNECTED' }),
    startedAt: t.field({ type: 'DateTime', nullable: true, resolve: (n) => n.startedAt }),
    enrollment: t.field({ type: NodeEnrollmentEnum, resolve: (n) => n.enrollment }),
    fingerprint: t.string({
      nullable: true,
      description: 'Of the keys the node enrolled (what approveNode checks); null for shared-token nodes',
      resolve: (n) => fingerprintOf(n),
    }),
    enrolledAt: t.field({ type: 'DateTime', nullable: true, resolve: (n) => n.enrolledAt }),
    approvedAt: t.field({ type: 'DateTime', nullable: true, resolve: (n) => n.approvedAt }),
    revokedAt: t.field({ type: 'DateTime', nullable: true, resolve: (n) => n.revokedAt }),
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

// ---- Mutations ----

const EnrollNodeInput = builder.inputType('EnrollNodeInput', {
  fields: (t) => ({
    nodeId: t.string({ description: 'Only a node with this id may use the token (recommended); also allows re-keying that node' }),
    ttlMinutes: t.int({ description: 'How long the token stays usable (default 60, at most 10080)' }),
  }),
});

interface EnrollNodePayloadShape {
  token?: string | undefined;
  nodeId?: string | null | undefined;
  expiresAt?: string | undefined;
  errors: UserErrorShape[];
}

const EnrollNodePayload = builder.objectRef<EnrollNodePayloadShape>('EnrollNodePayload').implement({
  fields: (t) => ({
    enrollmentToken: t.string({
      nullable: true,
      description: 'One-time token (ghe_…) for the node, as GATEHOUSE_ENROLLMENT_TOKEN. Shown this once: only its hash is stored.',
      resolve: (p) => p.token ?? null,
    }),
    nodeId: t.string({ nullable: true, resolve: (p) => p.nodeId ?? null }),
    expiresAt: t.field({ type: 'DateTime', nullable: true, resolve: (p) => p.expiresAt ?? null }),
    errors: t.field({ type: [UserErrorRef], resolve: (p) => p.errors }),
  }),
});

const ApproveNodeInput = builder.inputType('ApproveNodeInput', {
  fields: (t) => ({
    id: t.id({ required: true }),
    fingerprint: t.string({ required: true, description: 'What the node logged when it enrolled (also DataPlaneNode.fingerprint)' }),
  }),
});
const NodeIdInput = (name: string) => builder.inputType(name, { fields: (t) => ({ id: t.id({ required: true }) }) });
const RevokeNodeInput = NodeIdInput('RevokeNodeInput');
const ForgetNodeInput = NodeIdInput('ForgetNodeInput');

const ApproveNodePayload = entityPayload('ApproveNodePayload', 'node', DataPlaneNodeRef);
const RevokeNodePayload = entityPayload('RevokeNodePayload', 'node', DataPlaneNodeRef);
const ForgetNodePayload = entityPayload('ForgetNodePayload', 'node', DataPlaneNodeRef);

builder.mutationFields((t) => ({
  enrollNode: t.field({
    type: EnrollNodePayload,
    description: 'Issues a one-time enrollment token: a node presenting it with its public keys is approved at once.',
    args: { input: t.arg({ type: EnrollNodeInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const issued = await issueEnrollmentToken(trx, { nodeId: input.nodeId, ttlMinutes: input.ttlMinutes });
        return { token: issued.token, nodeId: issued.nodeId, expiresAt: issued.expiresAt };
      }),
  }),
  approveNode: t.field({
    type: ApproveNodePayload,
    description: 'Approves a node that presented its keys without a token, if its fingerprint is this one.',
    args: { input: t.arg({ type: ApproveNodeInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await approveNode(trx, input.id, input.fingerprint) })),
  }),
  revokeNode: t.field({
    type: RevokeNodePayload,
    description: 'Cuts a node off: its streams close on every replica and what is sealed from now on uses a data key it never gets.',
    args: { input: t.arg({ type: RevokeNodeInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const payload = await runMutation(ctx, async (trx) => ({ value: await revokeNode(trx, input.id) }));
      // The seal epoch moved (not the config version): tell the publishers of every replica.
      if (payload.errors.length === 0) ctx.configChanged();
      return payload;
    },
  }),
  forgetNode: t.field({
    type: ForgetNodePayload,
    description: 'Removes a DISCONNECTED node (and its enrolled keys: if it returns it must enroll again).',
    args: { input: t.arg({ type: ForgetNodeInput, required: true }) },
    resolve: (_root, { input }, ctx) => runMutation(ctx, async (trx) => ({ value: await forgetNode(trx, input.id) })),
  }),
}));
