import { Code } from '@connectrpc/connect';

/**
 * What to tell a candidate whose claim of the task titled `title` was refused with
 * `code`, or null when the refusal is not about the claim itself (then the error
 * is described as any other). FAILED_PRECONDITION: another candidate claimed it
 * first; NOT_FOUND: it is no longer the caller's to see (claimed by another, or
 * done).
 */
export function claimRefusal(title: string, code: Code): string | null {
  switch (code) {
    case Code.FailedPrecondition:
      return `Someone else claimed “${title}” just before you. Your inbox shows what is still open.`;
    case Code.NotFound:
      return `“${title}” is no longer open to you: someone else claimed it, or it was done.`;
    default:
      return null;
  }
}
