import { Code, ConnectError } from '@connectrpc/connect';

import { fieldViolations } from './bad-request';

/** A sentence for the user about a failed call. */
export function describeError(e: unknown): string {
  const err = ConnectError.from(e);
  const msg = err.rawMessage;
  switch (err.code) {
    case Code.Unauthenticated:
      return `You are not signed in, or your sign-in has expired: ${msg}`;
    case Code.PermissionDenied:
      return `Not allowed: ${msg}`;
    case Code.NotFound:
      return `Not found: ${msg}`;
    case Code.AlreadyExists:
      return `Already exists: ${msg}`;
    case Code.FailedPrecondition:
      return `Not possible now: ${msg}`;
    case Code.InvalidArgument: {
      const v = fieldViolations(err);
      return v.length
        ? `Invalid input: ${v.map((x) => `${x.field}: ${x.description}`).join('; ')}`
        : `Invalid input: ${msg}`;
    }
    case Code.Unavailable:
      return `The service is unavailable, try again: ${msg}`;
    case Code.DeadlineExceeded:
      return `The service took too long: ${msg}`;
    case Code.ResourceExhausted:
      return `Too many requests or connections: ${msg}`;
    default:
      return msg || String(e);
  }
}

export function errorCode(e: unknown): Code {
  return ConnectError.from(e).code;
}
