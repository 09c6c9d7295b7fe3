/**
 * `npm run signing-key -- list|add|activate KID|retire KID`: rotates the snapshot signing key in
 * GATEHOUSE_DATA_DIR (./data); see signing-keys.ts for the order and why. Prints key ids, never keys.
 */
import { activateSigningKey, addSigningKey, readSigningKeyFile, retireSigningKey } from './signing-keys.js';

const dataDir = process.env.GATEHOUSE_DATA_DIR ?? './data';
const [command, kid] = process.argv.slice(2);
const usage = 'usage: npm run signing-key -- list | add | activate KID | retire KID';

try {
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(
      `${usage}\n\n  list          the signing keys in GATEHOUSE_DATA_DIR (./data), the active one marked\n` +
        '  add           generate a new key (nodes learn it from snapshots signed by the current one)\n' +
        '  activate KID  sign with KID from the next start on\n  retire KID    stop announcing KID (after every node trusts the new one)\n',
    );
  } else if (command === 'list') {
    const file = readSigningKeyFile(dataDir);
    for (const key of file?.keys ?? []) process.stdout.write(`${key.kid}${key.kid === file?.active ? '  (active)' : ''}\n`);
  } else if (command === 'add') {
    process.stdout.write(`added ${await addSigningKey(dataDir)}; restart the control plane, then activate it once every node has applied a snapshot\n`);
  } else if (command === 'activate' && kid) {
    activateSigningKey(dataDir, kid);
    process.stdout.write(`activated ${kid}; restart the control plane\n`);
  } else if (command === 'retire' && kid) {
    retireSigningKey(dataDir, kid);
    process.stdout.write(`retired ${kid}; restart the control plane\n`);
  } else {
    process.stderr.write(`${usage}\n`);
    process.exit(2);
  }
} catch (error) {
  process.stderr.write(`signing-key: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
