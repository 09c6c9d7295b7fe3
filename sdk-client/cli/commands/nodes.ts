/** `gatehouse nodes list`: data-plane nodes and what they applied. */
import type { DataPlaneNode } from '../../client.js';
import { table, when } from '../../format.js';
import { EXIT_OK, printJson, type Command } from '../command.js';

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
          { header: 'HEALTH', value: (n) => n.health },
          { header: 'VERSION', value: (n) => (n.appliedVersion === null ? '-' : String(n.appliedVersion)) },
          { header: 'LAST SEEN', value: (n) => when(n.lastSeenAt) },
          { header: 'PROBLEMS', value: nodeProblems },
        ]),
      );
      return EXIT_OK;
    },
  },
];
