/**
 * MCP tool pricing in GraphQL (issue 7): `McpServer.toolPricing` and `setToolPricing`, a USD cost per call
 * of a server's tools that nodes charge to the caller's budgets.
 */
import { getMcpServerById } from '../../repos/mcp-servers.js';
import { getToolPricing, setToolPricing, type ToolPrice } from '../../repos/tool-pricing.js';
import { builder } from '../builder.js';
import { runMutation } from '../mutation.js';
import { entityPayload } from './common.js';
import { McpServerRef } from './mcp-servers.js';

const ToolPriceRef = builder.objectRef<ToolPrice>('ToolPrice').implement({
  description: 'A cost in USD charged to the caller\'s budgets for each call of the tool.',
  fields: (t) => ({
    tool: t.exposeString('tool', { description: 'The server\'s own tool name' }),
    usdPerCall: t.exposeFloat('usdPerCall'),
  }),
});

builder.objectField(McpServerRef, 'toolPricing', (t) =>
  t.field({ type: [ToolPriceRef], resolve: (s, _args, ctx) => getToolPricing(ctx.db, s.id) }),
);

const ToolPriceInput = builder.inputType('ToolPriceInput', {
  fields: (t) => ({
    tool: t.string({ required: true }),
    usdPerCall: t.float({ required: true, description: '0 or more' }),
  }),
});

const SetToolPricingInput = builder.inputType('SetToolPricingInput', {
  description: 'Replaces the server\'s whole price table ([] makes every tool free).',
  fields: (t) => ({
    server: t.string({ required: true, description: 'Server name' }),
    prices: t.field({ type: [ToolPriceInput], required: true }),
  }),
});

const SetToolPricingPayload = entityPayload('SetToolPricingPayload', 'mcpServer', McpServerRef);

builder.mutationFields((t) => ({
  setToolPricing: t.field({
    type: SetToolPricingPayload,
    args: { input: t.arg({ type: SetToolPricingInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      runMutation(ctx, async (trx) => {
        const id = await setToolPricing(trx, input);
        return { value: (await getMcpServerById(trx, id)) ?? undefined };
      }),
  }),
}));
