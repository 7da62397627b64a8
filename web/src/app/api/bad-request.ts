import { ConnectError } from '@connectrpc/connect';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';

/** One google.rpc.BadRequest.FieldViolation. */
export interface FieldViolation {
  /** A path to the field, e.g. "data.email" or "definition_key". */
  field: string;
  description: string;
}

/** The type name Connect-ES keeps for a google.rpc.BadRequest detail (the type URL
 * type.googleapis.com/google.rpc.BadRequest without its prefix). */
const BAD_REQUEST = 'google.rpc.BadRequest';

/**
 * Decodes a google.rpc.BadRequest from its wire format by hand:
 *   message BadRequest { repeated FieldViolation field_violations = 1; }
 *   message FieldViolation { string field = 1; string description = 2; ... }
 * Unknown fields (reason, localized_message in newer versions) are skipped.
 */
export function decodeBadRequest(bytes: Uint8Array): FieldViolation[] {
  const out: FieldViolation[] = [];
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1 && wireType === WireType.LengthDelimited) {
      out.push(decodeFieldViolation(reader.bytes()));
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  return out;
}

function decodeFieldViolation(bytes: Uint8Array): FieldViolation {
  const v: FieldViolation = { field: '', description: '' };
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1 && wireType === WireType.LengthDelimited) {
      v.field = reader.string();
    } else if (fieldNo === 2 && wireType === WireType.LengthDelimited) {
      v.description = reader.string();
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  return v;
}

/** The field violations an error carries (none when it has no BadRequest detail,
 * or when a detail does not decode). */
export function fieldViolations(err: ConnectError): FieldViolation[] {
  const out: FieldViolation[] = [];
  for (const detail of err.details) {
    if ('type' in detail && (detail.type === BAD_REQUEST || detail.type.endsWith('/' + BAD_REQUEST))) {
      try {
        out.push(...decodeBadRequest(detail.value));
      } catch {
        // a detail that does not decode is left out, as findDetails() would
      }
    }
  }
  return out;
}
