/** Why a node refused a snapshot. One class, one stable code per failure (jose's errors are the model). */
export type SnapshotErrorCode =
  | 'malformed'
  | 'unknown_key_id'
  | 'bad_signature'
  | 'rollback'
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
