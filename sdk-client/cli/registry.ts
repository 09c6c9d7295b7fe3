/**
 * Every CLI command, noun by noun. Adding a noun (profiles, provision, audit, nodes forget) is one module
 * under commands/ exporting its `Command[]`, plus one line here.
 */
import type { Command } from './command.js';
import { auditCommands } from './commands/audit.js';
import { configCommands } from './commands/config.js';
import { keyCommands } from './commands/keys.js';
import { nodeCommands } from './commands/nodes.js';
import { profileCommands } from './commands/profiles.js';
import { serverCommands } from './commands/servers.js';
import { sessionCommands } from './commands/session.js';
import { tokenCommands } from './commands/tokens.js';
import { userCommands } from './commands/users.js';

export const COMMANDS: readonly Command[] = [
  ...serverCommands,
  ...userCommands,
  ...keyCommands,
  ...profileCommands,
  ...nodeCommands,
  ...tokenCommands,
  ...configCommands,
  ...sessionCommands,
  ...auditCommands,
];
