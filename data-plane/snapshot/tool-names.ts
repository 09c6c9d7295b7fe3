/**
 * The tool-name rule both planes apply (the control plane imports only `data-plane/snapshot/*`): what the
 * control plane stores and shows (a server's `toolsToExecute`, a key grant's tools, the catalogs nodes
 * report, the tool and method names of audit events) and what the node serves and forwards (the tools an
 * upstream lists, the tools a caller may call through to it).
 * MCP 2025-11-25 says a tool name SHOULD be 1-128 characters of [A-Za-z0-9_.-]; upstreams do not all keep
 * to it (spaces, `/`, letters beyond ASCII), and nodes serve what they list, so only what cannot be a name
 * anyone means is refused: not a string, empty, longer than 128, or holding a control or format character.
 * Those characters (C0/C1 controls, DEL, bidi overrides, zero-width and line separators, lone surrogates)
 * would otherwise reach GraphQL answers, warnings and log lines, where they rewrite a terminal (ANSI escape
 * sequences), reorder what an operator reads (U+202E) or make two names look the same. The same rule
 * for everything else an upstream lists (`servableList`): prompts and resources whose name or URI breaks
 * it are left out like tools, and the text a client shows (titles, descriptions, schema descriptions) has
 * such characters replaced. Pure: no I/O.
 */

/** The spec's bound (2025-11-25 `server/tools#tool-names`: 1-128 characters). */
export const MAX_TOOL_NAME_LENGTH = 128;

/** Controls (Cc), format characters (Cf: bidi overrides, zero-width), line/paragraph separators, lone surrogates. */
const UNSHOWABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSHOWABLE_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
/** The same, but keeping tab and newline: a description is prose, and may have paragraphs. */
const UNSHOWABLE_IN_PROSE = /[^\P{Cc}\t\n]|[\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

export type ToolNameProblem = 'not_a_string' | 'empty' | 'too_long' | 'unshowable_characters';

/** Why `name` (already trimmed by the caller when it trims) cannot be stored as a tool name, or null. */
export function toolNameProblem(name: unknown): ToolNameProblem | null {
  if (typeof name !== 'string') return 'not_a_string';
  if (name.length === 0) return 'empty';
  if (name.length > MAX_TOOL_NAME_LENGTH) return 'too_long';
  if (UNSHOWABLE.test(name)) return 'unshowable_characters';
  return null;
}

/** A description as it may be stored and shown: each unshowable character but tab and newline as U+FFFD. */
export function showableDescription(text: string): string {
  return text.replace(UNSHOWABLE_IN_PROSE, '\uFFFD');
}

/** Whether `text` holds a character `toolNameProblem` refuses (a control or format character, a lone surrogate). */
export function hasUnshowable(text: string): boolean {
  return UNSHOWABLE.test(text);
}

/** `text` with each unshowable character as a `\u{…}` escape (hex code point): shows what was sent, does nothing. */
export function escapedUnshowable(text: string): string {
  return UNSHOWABLE.test(text) ? text.replace(UNSHOWABLE_ALL, (c) => `\\u{${(c.codePointAt(0) ?? 0).toString(16)}}`) : text;
}

/**
 * A refused name as a log line may carry it: unshowable characters as `\u{…}` escapes, at most 64
 * characters of it (the name is the upstream's, not a secret, and says which tool to look for there).
 */
export function scrubbedName(name: unknown): string {
  if (typeof name !== 'string') return `(${typeof name})`;
  const cut = [...name].slice(0, 64).join('');
  const escaped = escapedUnshowable(cut);
  return name.length > cut.length ? `${escaped}… (${name.length} characters)` : escaped;
}

/** One line of display text (a title, a MIME type) as it may be shown: every unshowable character, tab and newline too, as U+FFFD. */
export function showableLine(text: string): string {
  return UNSHOWABLE.test(text) ? text.replace(UNSHOWABLE_ALL, '\uFFFD') : text;
}

/**
 * Why `value`, a name or URI that identifies a prompt, a resource or a prompt argument, cannot be served, or
 * null: the tool-name rule without its length bound (MCP bounds tool names only; a URI may be long).
 */
export function identifierProblem(value: unknown): Exclude<ToolNameProblem, 'too_long'> | null {
  if (typeof value !== 'string') return 'not_a_string';
  if (value.length === 0) return 'empty';
  return UNSHOWABLE.test(value) ? 'unshowable_characters' : null;
}

/**
 * Why an entry of an upstream's list is left out: its identifying field breaks the rule (`field` says which),
 * a key of its schema does (`unshowable_characters` with field `inputSchema`/`outputSchema`: a parameter's
 * name is shown and sent as it is), or its schema nests deeper than anything real (MAX_SCHEMA_DEPTH).
 */
export type EntryProblem = ToolNameProblem | 'schema_too_deep';
/** A left-out entry, for a log line: its identifying name or URI scrubbed (`scrubbedName`), the field and why. */
export interface DroppedEntry {
  name: string;
  field: string;
  problem: EntryProblem;
}

/** The lists an upstream answers, by the method and the field of the result that holds the entries. */
export type ListField = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';
export const LIST_FIELDS: ReadonlyMap<string, ListField> = new Map([
  ['tools/list', 'tools'],
  ['prompts/list', 'prompts'],
  ['resources/list', 'resources'],
  ['resources/templates/list', 'resourceTemplates'],
]);

/** The fields that identify an entry of each list (the first names it in a log line). */
const IDENTIFYING: Readonly<Record<ListField, readonly string[]>> = {
  tools: ['name'],
  prompts: ['name'],
  resources: ['uri', 'name'],
  resourceTemplates: ['uriTemplate', 'name'],
};

/** Deeper than any real tool schema; the walk below recurses once per level, so it is bounded here. */
export const MAX_SCHEMA_DEPTH = 64;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** An entry left out (a class, so an upstream's entry can never be taken for one). */
class Refused {
  constructor(readonly entry: DroppedEntry) {}
}

/** What `showableSchema` answers for a schema too deep to walk, or with a key that breaks the rule. */
const TOO_DEEP: unique symbol = Symbol('too deep');
const BAD_KEY: unique symbol = Symbol('bad key');

/**
 * A JSON Schema as it may be shown: every string `title` (one line) and `description` (prose) at any level
 * showable, and `enumNames` (what a client shows for each `enum` value) as lines; the same value when nothing
 * needs it. TOO_DEEP past `depth` levels. For a tool's input or output schema (`form` false) BAD_KEY when a
 * key holds an unshowable character (a property's name identifies the argument: it cannot be rewritten);
 * other strings (`enum`, `default`, `pattern`) are values the call depends on: kept. For an elicitation's
 * form (`form` true) everything is shown to a person and nothing runs: every key and string is showable
 * (a key or `enum` value a client shows when there is no title; an upstream that sent one gets its answer
 * under the showable name, which only it can mind).
 */
function showableSchema(value: unknown, depth: number, form: boolean): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (depth === 0) return TOO_DEEP;
  if (Array.isArray(value)) {
    let out: unknown[] | null = null;
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      const shown = typeof item === 'string' ? (form ? showableLine(item) : item) : showableSchema(item, depth - 1, form);
      if (shown === TOO_DEEP || shown === BAD_KEY) return shown;
      if (shown !== item) (out ??= [...value])[i] = shown;
    }
    return out ?? value;
  }
  let out: Record<string, unknown> | null = null;
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    let name = key;
    if (UNSHOWABLE.test(key)) {
      if (!form) return BAD_KEY;
      name = showableLine(key);
    }
    const item = record[key];
    let shown: unknown;
    if (typeof item === 'string') shown = key === 'description' ? showableDescription(item) : key === 'title' || form ? showableLine(item) : item;
    else shown = showableSchema(item, depth - 1, form || key === 'enumNames');
    if (shown === TOO_DEEP || shown === BAD_KEY) return shown;
    if (name !== key) {
      out ??= { ...record };
      delete out[key];
      out[name] = shown;
    } else if (shown !== item) (out ??= { ...record })[key] = shown;
  }
  return out ?? value;
}

/**
 * One entry of an upstream's list as it may be served (see `servableList`): the entry itself when nothing
 * needs changing, a copy with its display text showable, or why it is left out.
 */
function servableEntry<T extends object>(field: ListField, entry: T): T | Refused {
  const record = entry as Record<string, unknown>;
  const identifying = IDENTIFYING[field];
  /** The entry as a log line names it (only an entry left out is named). */
  const refused = (key: string, problem: EntryProblem): Refused => new Refused({ name: scrubbedName(record[identifying[0] as string]), field: key, problem });
  for (const key of identifying) {
    const problem = field === 'tools' ? toolNameProblem(record[key]) : identifierProblem(record[key]);
    if (problem !== null) return refused(key, problem);
  }
  let out: Record<string, unknown> | null = null;
  const set = (key: string, value: unknown): void => {
    if (value !== record[key]) (out ??= { ...record })[key] = value;
  };
  // Display text: shown to the user (a terminal client prints it) and read by the model, never matched.
  if (typeof record.title === 'string') set('title', showableLine(record.title));
  if (typeof record.description === 'string') set('description', showableDescription(record.description));
  if (typeof record.mimeType === 'string') set('mimeType', showableLine(record.mimeType));
  if (isRecord(record.annotations) && typeof record.annotations.title === 'string') {
    const title = showableLine(record.annotations.title);
    if (title !== record.annotations.title) set('annotations', { ...record.annotations, title });
  }
  if (field === 'tools') {
    for (const key of ['inputSchema', 'outputSchema']) {
      const shown = showableSchema(record[key], MAX_SCHEMA_DEPTH, false);
      if (shown === TOO_DEEP) return refused(key, 'schema_too_deep');
      if (shown === BAD_KEY) return refused(key, 'unshowable_characters');
      set(key, shown);
    }
  }
  if (field === 'prompts' && Array.isArray(record.arguments)) {
    let args: unknown[] | null = null;
    for (const [i, argument] of record.arguments.entries()) {
      if (!isRecord(argument)) continue;
      // An argument's name is what the client sends back: it identifies, like the prompt's own.
      const problem = identifierProblem(argument.name);
      if (problem !== null) return refused('arguments.name', problem);
      const shown = servableText(argument);
      if (shown !== argument) (args ??= [...record.arguments])[i] = shown;
    }
    if (args !== null) set('arguments', args);
  }
  return (out ?? entry) as T;
}

/** `title` and `description` of an object (a prompt argument) showable; the object itself when they are. */
function servableText(record: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | null = null;
  if (typeof record.title === 'string') {
    const title = showableLine(record.title);
    if (title !== record.title) (out ??= { ...record }).title = title;
  }
  if (typeof record.description === 'string') {
    const description = showableDescription(record.description);
    if (description !== record.description) (out ??= { ...record }).description = description;
  }
  return out ?? record;
}

/**
 * What `servableEntry` made of each entry object, per kind of list: a pool's catalog keeps its tool objects
 * until the upstream's list changes, and `/mcp` filters it per request by the key's grant, so each tool
 * is walked (its schemas too) once, not on every tools/list. Weak: entries go with their catalogs.
 */
const SERVED: Readonly<Record<ListField, WeakMap<object, unknown>>> = { tools: new WeakMap(), prompts: new WeakMap(), resources: new WeakMap(), resourceTemplates: new WeakMap() };

/**
 * An upstream's tools, prompts, resources or resource templates (`field`) as they may be served, on every
 * route (`/mcp`, `/mcp/{server}` relayed or pooled): entries whose identifying name or URI breaks the rule
 * (for tools the tool-name rule, for the rest `identifierProblem`), or whose schema or argument names do,
 * left out (with why, scrubbed, for a log line); display text (`title`, `annotations.title`, `mimeType`
 * as one line; `description`, a schema's titles and descriptions, a prompt argument's, as prose keeping tab
 * and newline) with each unshowable character as U+FFFD. An ANSI escape there would rewrite the terminal of
 * a client that prints it, a bidi override reorder what a user reads. Entries that need nothing are the
 * same objects, and a list that needs nothing is `items` itself, so a caller can tell by identity that
 * nothing changed.
 */
export function servableList<T extends object>(field: ListField, items: readonly T[]): { items: readonly T[]; dropped: DroppedEntry[] } {
  let out: T[] | null = null;
  const dropped: DroppedEntry[] = [];
  for (let i = 0; i < items.length; i++) {
    const entry = items[i] as T;
    let served = SERVED[field].get(entry) as T | Refused | undefined;
    if (served === undefined) {
      served = servableEntry(field, entry);
      SERVED[field].set(entry, served);
    }
    let kept: T | null = null;
    if (served instanceof Refused) dropped.push(served.entry);
    else kept = served;
    if (kept !== entry && out === null) out = items.slice(0, i);
    if (out !== null && kept !== null) out.push(kept);
  }
  return { items: out ?? items, dropped };
}

/** `servableList` of tools. */
export function servableTools<T extends { name?: unknown; description?: unknown }>(tools: readonly T[]): { tools: readonly T[]; dropped: DroppedEntry[] } {
  const { items, dropped } = servableList('tools', tools);
  return { tools: items, dropped };
}

/** `serverInfo` fields shown as one line each; `description` is prose. */
const SERVER_INFO_LINES = ['name', 'title', 'version', 'websiteUrl'] as const;

/**
 * What an upstream says about itself (an `initialize` or `server/discover` result: `instructions`, which a
 * client puts before the model and may show, and `serverInfo`, which it shows) as it may be relayed: the
 * same display-text rule as its lists (`servableList`). The result itself when nothing needs changing.
 */
export function servableServerResult<T extends object>(result: T): T {
  const record = result as Record<string, unknown>;
  let out: Record<string, unknown> | null = null;
  if (typeof record.instructions === 'string') {
    const instructions = showableDescription(record.instructions);
    if (instructions !== record.instructions) (out ??= { ...record }).instructions = instructions;
  }
  const info = record.serverInfo;
  if (isRecord(info)) {
    let shown: Record<string, unknown> | null = null;
    for (const key of SERVER_INFO_LINES) {
      const value = info[key];
      if (typeof value === 'string' && hasUnshowable(value)) (shown ??= { ...info })[key] = showableLine(value);
    }
    if (typeof info.description === 'string') {
      const description = showableDescription(info.description);
      if (description !== info.description) (shown ??= { ...info }).description = description;
    }
    if (shown !== null) (out ??= { ...record }).serverInfo = shown;
  }
  return (out ?? result) as T;
}

/** A control or format character, or a backslash (JSON writes a control character only as an escape). */
const MAY_DECODE_UNSHOWABLE = /[\\\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
/**
 * What JSON text holds if it is a message `servableServerMessage` may change: a `method` (a request or a
 * notification), `inputRequests`, `elicitations` or an `error` (`servableAnswer`), written plainly or with `\u`
 * escapes (the only way to spell a letter otherwise). A tool result's text has its quotes escaped
 * (`\"method\"`), so it does not match.
 */
const SERVER_MESSAGE = /"method"|"inputRequests"|"elicitations"|"error"|\\u/;

/**
 * Whether JSON text (an SSE event's data, a body) may be a message `servableServerMessage` changes: it may
 * decode to an unshowable character (holds one, or an escape) and may be a request, a notification or a
 * result with input requests. Text that cannot is passed without being parsed: two regex tests.
 */
export function mayNeedServableServerMessage(json: string): boolean {
  return MAY_DECODE_UNSHOWABLE.test(json) && SERVER_MESSAGE.test(json);
}

/** What an elicitation's form becomes when it nests deeper than anything real: a form that asks nothing. */
const EMPTY_FORM = Object.freeze({ type: 'object', properties: {} });

/** An `elicitation/create` request's params as they may be shown (see `servableServerMessage`). */
function servableElicitation(params: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | null = null;
  if (typeof params.message === 'string') {
    const message = showableDescription(params.message);
    if (message !== params.message) (out ??= { ...params }).message = message;
  }
  // URL mode: the address the client shows before the user opens it (a U+202E there reorders the host).
  if (typeof params.url === 'string' && hasUnshowable(params.url)) (out ??= { ...params }).url = showableLine(params.url);
  if (isRecord(params.requestedSchema)) {
    const shown = showableSchema(params.requestedSchema, MAX_SCHEMA_DEPTH, true);
    if (shown !== params.requestedSchema) (out ??= { ...params }).requestedSchema = shown === TOO_DEEP ? EMPTY_FORM : shown;
  }
  return out ?? params;
}

/**
 * A response as it may be shown (see `servableServerMessage`): the requests it asks the client (a
 * 2026-07-28 result's `inputRequests`: the same requests, asked in a result; the URL elicitations of a
 * `URLElicitationRequiredError`, -32042, `error.data.elicitations`: a message and a URL the client shows),
 * and an error's `message`, which a client prints as it came (prose: a stack trace keeps its lines).
 */
function servableAnswer(record: Record<string, unknown>): Record<string, unknown> {
  const result = record.result;
  if (isRecord(result) && isRecord(result.inputRequests)) {
    let requests: Record<string, unknown> | null = null;
    for (const [name, request] of Object.entries(result.inputRequests)) {
      if (!isRecord(request)) continue;
      const servable = servableServerMessage(request);
      if (servable !== request) (requests ??= { ...result.inputRequests })[name] = servable;
    }
    return requests === null ? record : { ...record, result: { ...result, inputRequests: requests } };
  }
  const error = record.error;
  if (!isRecord(error)) return record;
  let shown: Record<string, unknown> | null = null;
  if (typeof error.message === 'string' && UNSHOWABLE.test(error.message)) {
    const message = showableDescription(error.message);
    if (message !== error.message) (shown ??= { ...error }).message = message;
  }
  if (isRecord(error.data) && Array.isArray(error.data.elicitations)) {
    let elicitations: unknown[] | null = null;
    for (const [i, elicitation] of error.data.elicitations.entries()) {
      if (!isRecord(elicitation)) continue;
      const servable = servableElicitation(elicitation);
      if (servable !== elicitation) (elicitations ??= [...error.data.elicitations])[i] = servable;
    }
    if (elicitations !== null) (shown ??= { ...error }).data = { ...error.data, elicitations };
  }
  return shown === null ? record : { ...record, error: shown };
}

/**
 * A message an upstream sends to the client (a request or notification, relayed on every route) with the
 * text a client shows a person as it may be shown, by the rule of its lists (`servableList`): an
 * `elicitation/create`'s message (prose), URL and form (`requestedSchema`: every key and string, titles and
 * enum names included); a `notifications/progress` message (one line); a `notifications/message` (log)
 * whose `data` is a string (prose) and its `logger` (one line); a `notifications/cancelled` reason (one
 * line); the same requests asked in an answer and an error's message (`servableAnswer`). Everything else passes as it is: tool results, prompt messages and
 * sampling requests are the model's content, `_meta` and ids the protocol's. The message itself when nothing
 * needs changing; a string without an unshowable character costs one regex test.
 */
export function servableServerMessage<T extends object>(message: T): T {
  const record = message as Record<string, unknown>;
  const params = record.params;
  let shown: Record<string, unknown> | null = null;
  switch (record.method) {
    case 'elicitation/create':
      if (isRecord(params)) shown = servableElicitation(params);
      break;
    case 'notifications/progress':
      if (isRecord(params) && typeof params.message === 'string' && hasUnshowable(params.message)) shown = { ...params, message: showableLine(params.message) };
      break;
    case 'notifications/message':
      if (isRecord(params)) {
        let out: Record<string, unknown> | null = null;
        if (typeof params.data === 'string') {
          const data = showableDescription(params.data);
          if (data !== params.data) (out ??= { ...params }).data = data;
        }
        if (typeof params.logger === 'string' && hasUnshowable(params.logger)) (out ??= { ...params }).logger = showableLine(params.logger);
        shown = out;
      }
      break;
    case 'notifications/cancelled':
      // The reason the upstream gives up on a request: a client may log or show it.
      if (isRecord(params) && typeof params.reason === 'string' && hasUnshowable(params.reason)) shown = { ...params, reason: showableLine(params.reason) };
      break;
    case undefined:
      return servableAnswer(record) as T;
    default:
      return message;
  }
  return shown === null || shown === params ? message : ({ ...record, params: shown } as T);
}
