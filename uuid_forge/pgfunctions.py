"""The ID function inside PostgreSQL: ``uuid-forge/1`` IDs computed by SQL, no round trip.

A migration backfills millions of rows; sending each through Python costs a round trip per
batch and a canonicalisation per row. These SQL functions build the same canonical name the
Python library builds (SPEC "Name and UUID") for the values JSON can carry exactly: text
(NFC-normalised, escaped as the spec says), integers, booleans, null, and arrays and objects of
those (members sorted by UTF-16 code units). Anything else raises an error naming the value's
place, never a different ID: a number with a fraction (a float in Python), an integral number
of 1e21 or more (Python prints the float 1e21 as ``1e+21`` and the int as digits, and jsonb no
longer knows which it was), nesting deeper than 100 levels, two keys equal after NFC.

* ``uuid_forge_id(namespace uuid, entity_type text, key jsonb, salt text DEFAULT '')``: the
  unkeyed scheme (UUID version 5, uuid-ossp's ``uuid_generate_v5``). ``key`` is an object (named
  key values, as ``generate(type, email=...)``) or an array (positional ones).
* ``uuid_forge_id_keyed(namespace, entity_type, key, salt, secret text | bytea)``: the keyed
  scheme (HMAC-SHA256, version 8, pgcrypto's ``hmac``). The secret is a parameter of each call;
  it is never part of a function's text, so ``\\df+`` and ``pg_proc`` do not show it.
* ``uuid_forge_name(entity_type, args jsonb, kwargs jsonb, salt)``: the name itself, for checks.

The server encoding must be UTF8 (``normalize`` needs it). ``uuid-forge sql postgres`` prints
this SQL; ``--install URL`` runs it.
"""

from __future__ import annotations

import re

from .errors import ValidationError

__all__ = ["FUNCTION_NAMES", "postgres_functions_sql"]

FUNCTION_NAMES = ("uuid_forge_text", "uuid_forge_utf16", "uuid_forge_value", "uuid_forge_name", "uuid_forge_id",
                  "uuid_forge_id_keyed")

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_SQL = r"""
-- the extensions go where the installer's search_path puts them (usually public); the two
-- functions that call them keep that search_path (SET search_path FROM CURRENT)
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pgcrypto;

-- C(str): NFC, then a JSON string escaped as the spec's rule 7 says
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_text(s text) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    n text := normalize(s, NFC);
    out text := '';
    ch text;
    cp int;
BEGIN
    IF n !~ '[\x01-\x1f"\\]' THEN
        RETURN '"' || n || '"';
    END IF;
    FOREACH ch IN ARRAY regexp_split_to_array(n, '') LOOP
        cp := ascii(ch);
        out := out || CASE
            WHEN ch = '"' THEN '\"'
            WHEN ch = '\' THEN '\\'
            WHEN cp = 8 THEN '\b'
            WHEN cp = 9 THEN '\t'
            WHEN cp = 10 THEN '\n'
            WHEN cp = 12 THEN '\f'
            WHEN cp = 13 THEN '\r'
            WHEN cp < 32 THEN '\u' || lpad(to_hex(cp), 4, '0')
            ELSE ch END;
    END LOOP;
    RETURN '"' || out || '"';
END
$fn$;

-- the UTF-16 code units of a text, the order RFC 8785 sorts object members in
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_utf16(s text) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    units int[] := '{{}}';
    ch text;
    cp int;
BEGIN
    FOREACH ch IN ARRAY regexp_split_to_array(s, '') LOOP
        cp := ascii(ch);
        IF cp >= 65536 THEN
            units := units || ARRAY[55296 + ((cp - 65536) >> 10), 56320 + ((cp - 65536) & 1023)];
        ELSE
            units := units || cp;
        END IF;
    END LOOP;
    RETURN units;
END
$fn$;

-- C(v) for the JSON values SQL can canonicalise exactly; an error naming the place for the rest
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_value(v jsonb, place text, depth int) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    kind text := jsonb_typeof(v);
    body text;
    dup bigint;
    num numeric;
BEGIN
    IF depth > 100 THEN
        RAISE EXCEPTION 'uuid_forge: the key is nested deeper than 100 levels at %', place
            USING ERRCODE = '22023';
    END IF;
    IF kind = 'null' THEN
        RETURN 'null';
    ELSIF kind = 'boolean' THEN
        RETURN v::text;
    ELSIF kind = 'string' THEN
        RETURN {schema}.uuid_forge_text(v #>> '{{}}');
    ELSIF kind = 'number' THEN
        num := (v #>> '{{}}')::numeric;
        IF num = trunc(num) AND abs(num) < 1e21 THEN
            RETURN trunc(num)::text;
        END IF;
        RAISE EXCEPTION 'uuid_forge: the number % at % is not supported in SQL (a fraction, or 1e21 or more, '
            'canonicalises as a Python float): compute this ID with the Python library', v #>> '{{}}', place
            USING ERRCODE = '22023';
    ELSIF kind = 'array' THEN
        SELECT string_agg({schema}.uuid_forge_value(e, place || '[' || (i - 1) || ']', depth + 1), ',' ORDER BY i)
          INTO body FROM jsonb_array_elements(v) WITH ORDINALITY AS a(e, i);
        RETURN '[' || coalesce(body, '') || ']';
    ELSE
        SELECT string_agg({schema}.uuid_forge_text(nk) || ':'
                          || {schema}.uuid_forge_value(val, place || '.' || key, depth + 1),
                          ',' ORDER BY {schema}.uuid_forge_utf16(nk)),
               count(*) - count(DISTINCT nk)
          INTO body, dup
          FROM (SELECT key, normalize(key, NFC) AS nk, value AS val FROM jsonb_each(v)) AS m;
        IF dup > 0 THEN
            RAISE EXCEPTION 'uuid_forge: two keys of the object at % are equal after NFC normalisation', place
                USING ERRCODE = '22023';
        END IF;
        RETURN '{{' || coalesce(body, '') || '}}';
    END IF;
END
$fn$;

-- the name the ID is made from: ["uuid-forge/1",C(type),C(args),C(kwargs),C(salt)]
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_name(entity_type text, args jsonb, kwargs jsonb, salt text)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
BEGIN
    IF entity_type IS NULL OR entity_type = '' THEN
        RAISE EXCEPTION 'uuid_forge: entity_type must be a non-empty text' USING ERRCODE = '22023';
    END IF;
    IF jsonb_typeof(coalesce(args, '[]')) <> 'array' OR jsonb_typeof(coalesce(kwargs, '{{}}')) <> 'object' THEN
        RAISE EXCEPTION 'uuid_forge: args must be a JSON array and kwargs a JSON object' USING ERRCODE = '22023';
    END IF;
    RETURN '["uuid-forge/1",' || {schema}.uuid_forge_text(entity_type) || ','
        || {schema}.uuid_forge_value(coalesce(args, '[]'), 'args', 1) || ','
        || {schema}.uuid_forge_value(coalesce(kwargs, '{{}}'), 'kwargs', 1) || ','
        || {schema}.uuid_forge_text(coalesce(salt, '')) || ']';
END
$fn$;

-- a key as generate() takes it: an object holds named values, an array positional ones
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_key_name(entity_type text, key jsonb, salt text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT {schema}.uuid_forge_name(entity_type,
        CASE WHEN jsonb_typeof(key) = 'array' THEN key ELSE '[]'::jsonb END,
        CASE WHEN jsonb_typeof(key) = 'array' THEN '{{}}'::jsonb ELSE key END, salt)
$fn$;

CREATE OR REPLACE FUNCTION {schema}.uuid_forge_id(namespace uuid, entity_type text, key jsonb, salt text DEFAULT '')
RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT AS $fn$
    SELECT uuid_generate_v5(namespace, {schema}.uuid_forge_key_name(entity_type, key, salt))
$fn$;

-- keyed mode: HMAC-SHA256(secret, namespace bytes || name), first 16 bytes, version 8, RFC 9562 variant
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_id_keyed(namespace uuid, entity_type text, key jsonb, salt text,
                                                        secret bytea)
RETURNS uuid LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE SET search_path FROM CURRENT AS $fn$
DECLARE
    d bytea;
BEGIN
    d := substring(hmac(uuid_send(namespace)
                                 || convert_to({schema}.uuid_forge_key_name(entity_type, key, salt), 'UTF8'),
                                 secret, 'sha256') FROM 1 FOR 16);
    d := set_byte(d, 6, (get_byte(d, 6) & 15) | 128);
    d := set_byte(d, 8, (get_byte(d, 8) & 63) | 128);
    RETURN encode(d, 'hex')::uuid;
END
$fn$;

CREATE OR REPLACE FUNCTION {schema}.uuid_forge_id_keyed(namespace uuid, entity_type text, key jsonb, salt text,
                                                        secret text)
RETURNS uuid LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
    SELECT {schema}.uuid_forge_id_keyed(namespace, entity_type, key, salt, convert_to(secret, 'UTF8'))
$fn$;
"""


def postgres_functions_sql(schema: str = "public") -> str:
    """The SQL that creates the functions (and the two extensions they use) in ``schema``."""
    if not isinstance(schema, str) or not _IDENTIFIER.fullmatch(schema):
        raise ValidationError(f"schema {schema!r} must be a lowercase SQL identifier (letters, digits, _; "
                              "at most 63), e.g. public")
    return _SQL.format(schema=schema).lstrip("\n")
