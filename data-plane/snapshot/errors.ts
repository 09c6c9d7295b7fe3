/** Why a node refused a snapshot. One class, one stable code per failure (jose's errors are the model). */
export type SnapshotErrorCode =
  | 'malformed'
  | 'unknown_key_id'
  | 'bad_signature'
  | 'rollback'
  /** A delta whose base is not the version the node runs: the node needs a whole snapshot. */
  | 'gap'
  | 'unsupported_format'
  | 'data_key';

export class SnapshotError extends Error {
  constructor(
    readonly code: SnapshotErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'SnapshotError';
  }
}
