import { ChangeDetectionStrategy, Component, effect, input, signal, untracked } from '@angular/core';
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';

type ValueType = 'text' | 'number' | 'boolean' | 'json';

interface Row {
  uid: number;
  key: string;
  type: ValueType;
  value: string;
}

let nextUid = 1;

function rowOf(key: string, v: JsonValue): Row {
  const uid = nextUid++;
  if (typeof v === 'string') {
    return { uid, key, type: 'text', value: v };
  }
  if (typeof v === 'number') {
    return { uid, key, type: 'number', value: String(v) };
  }
  if (typeof v === 'boolean') {
    return { uid, key, type: 'boolean', value: String(v) };
  }
  return { uid, key, type: 'json', value: JSON.stringify(v) };
}

/**
 * A generic editor for forms without a schema: one row per key, each with a type
 * (text, number, yes/no, JSON) so the engine gets typed variables.
 */
@Component({
  selector: 'ramp-kv-editor',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    <fieldset class="kv" [disabled]="disabled()">
      <legend>Answers</legend>
      <p class="muted">This form has no layout: enter each answer as a name and a value.</p>
      @for (row of rows(); track row.uid; let i = $index) {
        <div class="kv-row" data-testid="kv-row" [class.invalid]="invalidKeys().includes(row.key)">
          <div class="field">
            <label [for]="'kv-key-' + row.uid">Name {{ i + 1 }}</label>
            <input
              [id]="'kv-key-' + row.uid"
              data-testid="kv-key"
              autocomplete="off"
              [value]="row.key"
              [attr.aria-invalid]="invalidKeys().includes(row.key) ? true : null"
              (input)="update(row.uid, { key: text($event) })"
            />
          </div>
          <div class="field">
            <label [for]="'kv-type-' + row.uid">Type {{ i + 1 }}</label>
            <select
              [id]="'kv-type-' + row.uid"
              [value]="row.type"
              (change)="update(row.uid, { type: $any(text($event)) })"
            >
              <option value="text">Text</option>
              <option value="number">Number</option>
              <option value="boolean">Yes / no</option>
              <option value="json">JSON</option>
            </select>
          </div>
          <div class="field grow">
            <label [for]="'kv-value-' + row.uid">Value {{ i + 1 }}</label>
            @if (row.type === 'boolean') {
              <select
                [id]="'kv-value-' + row.uid"
                data-testid="kv-value"
                [value]="row.value === 'true' ? 'true' : 'false'"
                (change)="update(row.uid, { value: text($event) })"
              >
                <option value="true">Yes</option>
                <option value="false">No</option>
              </select>
            } @else {
              <input
                [id]="'kv-value-' + row.uid"
                data-testid="kv-value"
                autocomplete="off"
                [attr.inputmode]="row.type === 'number' ? 'decimal' : null"
                [value]="row.value"
                (input)="update(row.uid, { value: text($event) })"
              />
            }
          </div>
          <button
            type="button"
            class="link"
            [attr.aria-label]="'Remove answer ' + (row.key || i + 1)"
            (click)="remove(row.uid)"
          >
            Remove
          </button>
        </div>
      }
      <button type="button" (click)="add()">Add an answer</button>
    </fieldset>
  `,
})
export class KeyValueEditor {
  /** The values to start from (prefill merged with the draft). */
  readonly initial = input<JsonObject>({});
  /** Keys the server refused, marked in the rows. */
  readonly invalidKeys = input<string[]>([]);
  readonly disabled = input(false);

  readonly rows = signal<Row[]>([]);

  constructor() {
    effect(() => {
      const init = this.initial();
      untracked(() => {
        const rows = Object.entries(init).map(([k, v]) => rowOf(k, v));
        this.rows.set(rows.length ? rows : [rowOf('', '')]);
      });
    });
  }

  text(ev: Event): string {
    return (ev.target as HTMLInputElement | HTMLSelectElement).value;
  }

  update(uid: number, change: Partial<Row>): void {
    this.rows.update((rows) =>
      rows.map((r) => {
        if (r.uid !== uid) {
          return r;
        }
        const next = { ...r, ...change };
        if (change.type === 'boolean' && next.value !== 'true') {
          next.value = 'false';
        }
        return next;
      }),
    );
  }

  add(): void {
    this.rows.update((rows) => [...rows, rowOf('', '')]);
  }

  remove(uid: number): void {
    this.rows.update((rows) => rows.filter((r) => r.uid !== uid));
  }

  /** The answers as data, or the problems that keep them from being data. */
  value(): { data: JsonObject; problems: string[] } {
    const data: JsonObject = {};
    const problems: string[] = [];
    for (const [i, r] of this.rows().entries()) {
      const key = r.key.trim();
      if (key === '') {
        if (r.value.trim() !== '' && r.type !== 'boolean') {
          problems.push(`Answer ${i + 1} has a value but no name.`);
        }
        continue;
      }
      if (key in data) {
        problems.push(`The name "${key}" is used twice.`);
        continue;
      }
      switch (r.type) {
        case 'text':
          data[key] = r.value;
          break;
        case 'number': {
          const n = Number(r.value.trim());
          if (r.value.trim() === '' || !Number.isFinite(n)) {
            problems.push(`"${key}" is not a number.`);
          } else {
            data[key] = n;
          }
          break;
        }
        case 'boolean':
          data[key] = r.value === 'true';
          break;
        case 'json':
          try {
            data[key] = JSON.parse(r.value) as JsonValue;
          } catch {
            problems.push(`"${key}" is not valid JSON.`);
          }
          break;
      }
    }
    return { data, problems };
  }
}
