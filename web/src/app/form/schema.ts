import type { JsonObject, JsonValue } from '@bufbuild/protobuf';

import type { FieldViolation } from '../api/bad-request';

/** A server field violation as the form page shows it. */
export interface ShownViolation {
  /** The form field's key ("email" for "data.email"); the raw path otherwise. */
  key: string;
  /** The field's label in the schema, or the key. */
  label: string;
  description: string;
}

function isObject(v: JsonValue | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Finds a component by its key (or dotted path through groups with a `path`) in a
 * Camunda Form schema, searching nested components.
 */
export function findComponent(schema: JsonObject | undefined, key: string): JsonObject | null {
  const walk = (node: JsonValue | undefined, prefix: string): JsonObject | null => {
    if (!isObject(node)) {
      return null;
    }
    const components = node['components'];
    if (!Array.isArray(components)) {
      return null;
    }
    for (const c of components) {
      if (!isObject(c)) {
        continue;
      }
      const ck = typeof c['key'] === 'string' ? c['key'] : null;
      if (ck && (ck === key || `${prefix}${ck}` === key)) {
        return c;
      }
      const path = typeof c['path'] === 'string' && c['path'] ? `${prefix}${c['path']}.` : prefix;
      const found = walk(c, path);
      if (found) {
        return found;
      }
    }
    return null;
  };
  return walk(schema, '');
}

/** The label a user sees for a field key, or the key itself. */
export function labelFor(schema: JsonObject | undefined, key: string): string {
  const c = findComponent(schema, key);
  const label = c?.['label'];
  return typeof label === 'string' && label.trim() !== '' ? label.trim() : key;
}

/** Server violations (paths "data.<key>") turned into what the page lists. */
export function showViolations(schema: JsonObject | undefined, violations: FieldViolation[]): ShownViolation[] {
  return violations.map((v) => {
    const key = v.field.startsWith('data.') ? v.field.slice('data.'.length) : v.field;
    return { key, label: labelFor(schema, key), description: v.description };
  });
}

/** JSON that the API can carry: drops undefined values, turns dates into strings. */
export function toJsonObject(data: unknown): JsonObject {
  const clean = JSON.parse(JSON.stringify(data ?? {})) as unknown;
  return isObject(clean as JsonValue) ? (clean as JsonObject) : {};
}
