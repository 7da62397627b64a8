import { DeliveryState, type Delivery } from '../../gen/ramp/v1/form_pb';

/**
 * The server words its reasons for people already ("the process could not use this
 * answer: it needs a value for `approved`", "not yet delivered: the process engine
 * is unavailable"). The page puts them into its own sentences, so a lead-in the
 * reason already carries is dropped rather than said twice.
 */
function without(leadIn: RegExp, text: string): string {
  return text
    .trim()
    .replace(leadIn, '')
    .replace(/^[\s:,;-]+/, '')
    .replace(/[\s.]+$/, '')
    .trim();
}

const RETURNED_LEAD_IN = /^the process could not use (this|your|the) answer\b/i;
const NOT_DELIVERED_LEAD_IN = /^not (yet )?delivered( yet)?\b/i;

/** Why the process could not use the answer, without the lead-in. */
export function returnCause(reason: string): string {
  return without(RETURNED_LEAD_IN, reason);
}

/** What a returned form says above its fields. */
export function returnedText(reason: string): string {
  const cause = returnCause(reason);
  return cause
    ? `The process could not use your answer: ${cause}. Correct it and submit again.`
    : 'The process could not use your answer. Correct it and submit again.';
}

/** A reason cut to fit on an inbox card. */
export function shortReason(reason: string, max = 140): string {
  const cause = returnCause(reason);
  if (cause.length <= max) {
    return cause;
  }
  const cut = cause.slice(0, max);
  const space = cut.lastIndexOf(' ');
  return `${(space > max / 2 ? cut.slice(0, space) : cut).trimEnd()}…`;
}

/**
 * A sentence for the author of a submitted answer about its delivery, or null
 * when the state says enough (delivered, pending without trouble so far).
 */
export function deliveryNote(delivery: Delivery | undefined): string | null {
  if (!delivery) {
    return null;
  }
  const cause = without(NOT_DELIVERED_LEAD_IN, delivery.lastError);
  switch (delivery.state) {
    case DeliveryState.PENDING:
      return cause ? `Not yet delivered: ${cause}. ramp keeps trying; you need not submit again.` : null;
    case DeliveryState.FAILED:
      return (
        `Not yet delivered: ${cause || 'it did not go through in the time allowed'}. ` +
        'Retries have stopped: an administrator can look at it and retry it; you need not submit again.'
      );
    case DeliveryState.UNDELIVERABLE:
      return 'The process ended before your answer reached it, so the answer could not be used.';
    case DeliveryState.REFUSED:
      return returnedText(delivery.lastError);
    default:
      return null;
  }
}

/** A piece of a reason: plain words, or a name the server quoted in backticks. */
export interface Segment {
  text: string;
  code: boolean;
}

/**
 * Splits a reason at its backtick-quoted names ("it needs a value for `approved`"),
 * so the page shows them as code rather than as backticks. An unpaired backtick
 * stays as it is.
 */
export function segments(text: string): Segment[] {
  const parts = text.split('`');
  if (parts.length < 3) {
    return [{ text, code: false }];
  }
  const out: Segment[] = [];
  // An even number of pieces means one backtick has no pair: keep it in the last one.
  const paired = parts.length % 2 === 1 ? parts : [...parts.slice(0, -2), `${parts.at(-2)}\`${parts.at(-1)}`];
  paired.forEach((piece, i) => {
    if (piece !== '') {
      out.push({ text: piece, code: i % 2 === 1 });
    }
  });
  return out;
}

/** What a returned form says above its fields, with quoted names marked. */
export function returnedSegments(reason: string): Segment[] {
  const cause = returnCause(reason);
  if (!cause) {
    return [{ text: returnedText(reason), code: false }];
  }
  return [
    { text: 'The process could not use your answer: ', code: false },
    ...segments(cause),
    { text: '. Correct it and submit again.', code: false },
  ];
}
