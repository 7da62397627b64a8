import type { JsonObject, JsonValue } from '@bufbuild/protobuf';

import { findComponent, labelFor } from './schema';

/** One submitted answer as a person reads it. */
export interface ShownAnswer {
  key: string;
  label: string;
  value: string;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value in words: an option's label where the field lists options, yes/no for
 * booleans, lists joined, anything else as JSON. */
function shown(component: JsonObject | null, value: JsonValue): string {
  const options = component?.['values'];
  const optionLabel = (v: JsonValue): string | null => {
    if (!Array.isArray(options)) {
      return null;
    }
    const o = options.find((x) => isObject(x) && x['value'] === v);
    return isObject(o) && typeof o['label'] === 'string' ? o['label'] : null;
  };
  if (typeof value === 'boolean') {
    return value ? 'yes' : 'no';
  }
  if (value === null) {
    return '—';
  }
  if (Array.isArray(value)) {
    return value.map((v) => optionLabel(v) ?? (typeof v === 'string' ? v : JSON.stringify(v))).join(', ');
  }
  if (typeof value === 'object') {
    return JSON.stringify(value);
  }
  return optionLabel(value) ?? String(value);
}

/** The answers as submitted, in the order of the schema's fields where it has them. */
export function submittedAnswers(schema: JsonObject | undefined, data: JsonObject | undefined): ShownAnswer[] {
  if (!data) {
    return [];
  }
  const keys = Object.keys(data);
  const order = (k: string): number => {
    const text = JSON.stringify(schema ?? {});
    const i = text.indexOf(`"key":"${k}"`);
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return keys
    .sort((a, b) => order(a) - order(b))
    .map((key) => ({ key, label: labelFor(schema, key), value: shown(findComponent(schema, key), data[key]) }));
}
