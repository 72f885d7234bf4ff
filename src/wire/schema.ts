/**
 * A small declarative schema for method params: each field's type, bounds and
 * default. Validation names the field and the fix in its error message, and
 * rejects unknown fields so a typo never silently means "not given".
 * @module
 */

import { invalidArgument } from "./errors.ts";

/** A string field. */
export interface StringField {
  type: "string";
  optional?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: RegExp;
  /** Shown in the error when `pattern` does not match. */
  hint?: string;
}

/** An integer field. */
export interface IntegerField {
  type: "integer";
  optional?: boolean;
  default?: number;
  min?: number;
  max?: number;
}

/** A boolean field. */
export interface BooleanField {
  type: "boolean";
  optional?: boolean;
  default?: boolean;
}

/** An array-of-strings field. */
export interface StringListField {
  type: "string[]";
  optional?: boolean;
  maxItems?: number;
  maxItemLength?: number;
}

/** Any field. */
export type FieldSpec = StringField | IntegerField | BooleanField | StringListField;

/** The params schema of a method: field name to spec. */
export type ParamsSchema = Record<string, FieldSpec>;

function checkString(name: string, spec: StringField, v: unknown): string {
  if (typeof v !== "string") throw invalidArgument(`params.${name}: must be a string`);
  if (spec.minLength !== undefined && v.length < spec.minLength) {
    throw invalidArgument(
      spec.minLength === 1
        ? `params.${name}: must not be empty`
        : `params.${name}: must be at least ${spec.minLength} characters`,
    );
  }
  if (spec.maxLength !== undefined && v.length > spec.maxLength) {
    throw invalidArgument(`params.${name}: must be at most ${spec.maxLength} characters`);
  }
  if (spec.pattern && !spec.pattern.test(v)) {
    throw invalidArgument(`params.${name}: ${spec.hint ?? `must match ${spec.pattern}`}`);
  }
  return v;
}

function checkInteger(name: string, spec: IntegerField, v: unknown): number {
  if (typeof v !== "number" || !Number.isSafeInteger(v)) {
    throw invalidArgument(`params.${name}: must be an integer`);
  }
  if (spec.min !== undefined && v < spec.min) {
    throw invalidArgument(`params.${name}: must be at least ${spec.min} (got ${v})`);
  }
  if (spec.max !== undefined && v > spec.max) {
    throw invalidArgument(`params.${name}: must be at most ${spec.max} (got ${v})`);
  }
  return v;
}

function checkList(name: string, spec: StringListField, v: unknown): string[] {
  if (!Array.isArray(v)) throw invalidArgument(`params.${name}: must be an array of strings`);
  if (spec.maxItems !== undefined && v.length > spec.maxItems) {
    throw invalidArgument(`params.${name}: at most ${spec.maxItems} items`);
  }
  for (const item of v) {
    if (typeof item !== "string") {
      throw invalidArgument(`params.${name}: every item must be a string`);
    }
    if (spec.maxItemLength !== undefined && item.length > spec.maxItemLength) {
      throw invalidArgument(
        `params.${name}: items must be at most ${spec.maxItemLength} characters`,
      );
    }
  }
  return v as string[];
}

/** Each schema's fields as a list, made once: every request validates its params. */
const fieldLists = new WeakMap<ParamsSchema, [string, FieldSpec][]>();

function fieldsOf(schema: ParamsSchema): [string, FieldSpec][] {
  let fields = fieldLists.get(schema);
  if (!fields) {
    fields = Object.entries(schema);
    fieldLists.set(schema, fields);
  }
  return fields;
}

/**
 * Validates `params` against `schema` and returns a new object holding only
 * the declared fields, with defaults filled in.
 */
export function validateParams<T>(
  schema: ParamsSchema,
  params: Record<string, unknown> | undefined,
): T {
  const input = params ?? {};
  for (const key in input) {
    if (Object.hasOwn(input, key) && !Object.hasOwn(schema, key)) {
      const known = Object.keys(schema);
      throw invalidArgument(
        known.length === 0
          ? `params.${key}: this method takes no params`
          : `params.${key}: unknown field; expected ${known.join(", ")}`,
      );
    }
  }
  const out: Record<string, unknown> = {};
  for (const [name, spec] of fieldsOf(schema)) {
    const v = input[name];
    if (v === undefined || v === null) {
      if ("default" in spec && spec.default !== undefined) out[name] = spec.default;
      else if (!spec.optional) throw invalidArgument(`params.${name}: required`);
      continue;
    }
    switch (spec.type) {
      case "string":
        out[name] = checkString(name, spec, v);
        break;
      case "integer":
        out[name] = checkInteger(name, spec, v);
        break;
      case "boolean":
        if (typeof v !== "boolean") throw invalidArgument(`params.${name}: must be true or false`);
        out[name] = v;
        break;
      case "string[]":
        out[name] = checkList(name, spec, v);
        break;
    }
  }
  return out as T;
}
