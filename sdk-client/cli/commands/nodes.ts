/**
 * `gatehouse nodes list|enroll|approve|revoke|forget`: data-plane nodes, what they applied, and their identity
 * (a one-time enrollment token, approving a node by the fingerprint it logged, cutting one off, removing one
 * that went away).
 */
import type { DataPlaneNode } from '../../client.js';
import { GatehouseError } from '../../errors.js';
import { clean, table, when } from '../../format.js';
import { EXIT_OK, finish, printJson, UsageError, type Command } from '../command.js';

function nodeProblems(node: DataPlaneNode): string {
  const problems = node.missingEnv.map((m) => `missing env ${m.name} (${m.servers.join(', ')})`);
  if (node.lastRejection) problems.push(`rejected snapshot: ${node.lastRejection.code}`);
  return problems.length === 0 ? '-' : problems.join('; ');
}

export const nodeCommands: readonly Command[] = [
  {
    group: 'nodes',
    action: 'list',
    args: [],
    synopsis: '',
    summary: 'List data-plane nodes and what they applied',
    async run(ctx) {
      const nodes = await ctx.client.allNodes();
      if (ctx.json) return printJson(ctx, nodes);
      ctx.out(
        table(nodes, [
          { header: 'ID', value: (n) => n.id },
          { header: 'CONNECTED', value: (n) => (n.connected ? 'yes' : 'no') },
          { header: 'ENROLLMENT', value: (n) => n.enrollment },
          { header: 'HEALTH', value: (n) => n.health },
          { header: 'VERSION', value: (n) => (n.appliedVersion === null ? '-' : String(n.appliedVersion)) },
          { header: 'LAST SEEN', value: (n) => when(n.lastSeenAt) },
          { header: 'PROBLEMS', value: nodeProblems },
        ]),
      );
      return EXIT_OK;
    },
  },
  {
    group: 'nodes',
    action: 'enroll',
    args: [],
    options: { 'node-id': { type: 'string', placeholder: 'ID' }, ttl: { type: 'string', placeholder: 'MINUTES' } },
    synopsis: '[--node-id ID] [--ttl MINUTES]',
    summary: 'Issue a one-time enrollment token for a node; prints it (shown once) on stdout',
    async run(ctx) {
      const ttlText = ctx.string('ttl');
      const ttlMinutes = ttlText === undefined ? null : Number(ttlText);
      if (ttlMinutes !== null && (!Number.isInteger(ttlMinutes) || ttlMinutes <= 0)) {
        throw new UsageError('--ttl must be a whole number of minutes');
      }
      const payload = await ctx.client.enrollNode({ nodeId: ctx.string('node-id') ?? null, ttlMinutes });
      return finish(ctx, payload, () => {
        if (payload.enrollmentToken === null) throw new GatehouseError('GRAPHQL', 'the control plane returned no token');
        ctx.out(`${payload.enrollmentToken}\n`);
        const scope = payload.nodeId === null ? 'any node id' : `node ${clean(payload.nodeId)}`;
        ctx.err(`enrollment token for ${scope}, usable until ${when(payload.expiresAt)}. Start the node with GATEHOUSE_ENROLLMENT_TOKEN set to it; it is shown only this once.\n`);
      });
    },
  },
  {
    group: 'nodes',
    action: 'approve',
    args: ['ID'],
    options: { fingerprint: { type: 'string', placeholder: 'FINGERPRINT' } },
    required: ['fingerprint'],
    synopsis: 'ID --fingerprint FINGERPRINT',
    summary: 'Approve a node that presented its keys, if its fingerprint (from its log) matches',
    async run(ctx) {
      const payload = await ctx.client.approveNode({ id: ctx.args[0] ?? '', fingerprint: ctx.string('fingerprint') ?? '' });
      return finish(ctx, payload, () => {
        if (payload.node) ctx.out(`approved node ${clean(payload.node.id)}\n`);
      });
    },
  },
  {
    group: 'nodes',
    action: 'revoke',
    args: ['ID'],
    synopsis: 'ID',
    summary: 'Cut a node off: its streams close and it gets no data key from now on',
    async run(ctx) {
      const payload = await ctx.client.revokeNode({ id: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => {
        if (payload.node) ctx.out(`revoked node ${clean(payload.node.id)}\n`);
      });
    },
  },
  {
    group: 'nodes',
    action: 'forget',
    args: ['ID'],
    synopsis: 'ID',
    summary: 'Remove a DISCONNECTED node (it must enroll again if it returns)',
    async run(ctx) {
      const payload = await ctx.client.forgetNode({ id: ctx.args[0] ?? '' });
      return finish(ctx, payload, () => {
        if (payload.node) ctx.out(`forgot node ${clean(payload.node.id)}\n`);
      });
    },
  },
];
