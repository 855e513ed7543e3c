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
this SQL; ``--install`` runs it (:mod:`uuid_forge.adapters.sql.functions`), ``--check`` runs the
cases of :mod:`uuid_forge.pgcheck` against it. Speed: see the comment at the top of the SQL.
"""

from __future__ import annotations

import re

from .errors import ValidationError

__all__ = ["FUNCTION_NAMES", "postgres_functions_sql"]

FUNCTION_NAMES = ("uuid_forge_text", "uuid_forge_utf16", "uuid_forge_plain_name", "uuid_forge_plain_text",
                  "uuid_forge_flat_object", "uuid_forge_fast_key_name",
                  "uuid_forge_value", "uuid_forge_number", "uuid_forge_array", "uuid_forge_object", "uuid_forge_name",
                  "uuid_forge_key_name", "uuid_forge_id", "uuid_forge_id_keyed")

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_SQL = r"""
-- the bodies name each other before all exist (value <-> object): checked when called
SET check_function_bodies = false;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp" SCHEMA {ossp};
CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA {pgcrypto};

-- Speed: a backfill calls these once per row. The SQL functions are single expressions the
-- planner inlines into the caller's query; the PL/pgSQL ones keep each jsonb they read in a
-- variable (an inlined expression would compute it again at every mention) and run no query
-- for the usual key (an object of one or two members, or an array of plain values).

-- C(str): NFC, then a JSON string escaped as the spec's rule 7 says, which is how PostgreSQL's
-- JSON output escapes (\" \\ \b \f \n \r \t, other controls \u00xx, nothing else). STABLE only
-- because to_json is declared so; not STRICT, so the planner inlines it.
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_text(s text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
    SELECT to_json(CASE WHEN octet_length(s) = length(s) OR s IS NFC NORMALIZED THEN s
                        ELSE normalize(s, NFC) END)::text
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

-- a member name that sorts by bytes (COLLATE "C") as by UTF-16 code units and is its own NFC
-- form: any name without U+E000..U+FFFF (a supplementary character's first unit, D800..DBFF,
-- sorts before those), NFC-normalised
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_plain_name(k text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT octet_length(k) = length(k) OR (k IS NFC NORMALIZED AND k !~ '[\uE000-\uFFFF]')
$fn$;

-- C(v) for the JSON values SQL can canonicalise exactly; an error naming the place for the rest
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_value(v jsonb, place text, depth int) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $fn$
    SELECT CASE jsonb_typeof(v)
        WHEN 'string' THEN CASE WHEN (v #>> '{{}}') IS NFC NORMALIZED THEN v::text
                                ELSE {schema}.uuid_forge_text(v #>> '{{}}') END
        WHEN 'number' THEN CASE WHEN v::text ~ '^-?[0-9]{{1,21}}$' THEN v::text
                                ELSE {schema}.uuid_forge_number(v, place) END
        WHEN 'object' THEN {schema}.uuid_forge_object(v, place, depth)
        WHEN 'array' THEN {schema}.uuid_forge_array(v, place, depth)
        ELSE v::text END  -- true, false, null
$fn$;

-- a number that is not a plain integer of at most 21 digits: its digits if integral and below
-- 1e21, else the error (a fraction, or 1e21 or more, is a float to Python)
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_number(v jsonb, place text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    num numeric := (v #>> '{{}}')::numeric;
BEGIN
    IF num = trunc(num) AND abs(num) < 1e21 THEN
        RETURN trunc(num)::text;
    END IF;
    RAISE EXCEPTION 'uuid_forge: the number % at % is not supported in SQL (a fraction, or 1e21 or more, '
        'canonicalises as a Python float): compute this ID with the Python library', v #>> '{{}}', place
        USING ERRCODE = '22023';
END
$fn$;

CREATE OR REPLACE FUNCTION {schema}.uuid_forge_array(v jsonb, place text, depth int) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    n int := jsonb_array_length(v);
    body text := '';
BEGIN
    IF depth > 100 THEN
        RAISE EXCEPTION 'uuid_forge: the key is nested deeper than 100 levels at %', place USING ERRCODE = '22023';
    END IF;
    FOR i IN 0 .. n - 1 LOOP
        body := body || CASE WHEN i > 0 THEN ',' ELSE '' END
                || {schema}.uuid_forge_value(v -> i, place || '[' || i || ']', depth + 1);
    END LOOP;
    RETURN '[' || body || ']';
END
$fn$;

-- an object: members sorted by UTF-16 code units; names equal after NFC are an error
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_object(v jsonb, place text, depth int) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
DECLARE
    t text;
    p int;
    kvs jsonb;
    k0 text;
    k1 text;
    v0 jsonb;
    v1 jsonb;
    m0 text;
    m1 text;
    body text;
    plain boolean;
    dup bigint;
BEGIN
    IF depth > 100 THEN
        RAISE EXCEPTION 'uuid_forge: the key is nested deeper than 100 levels at %', place USING ERRCODE = '22023';
    END IF;
    -- one member, read from jsonb's text {{"name": value}}: a name with no backslash in that text
    -- was escaped as nothing, so it is the name itself; v minus it being {{}} proves it the only one
    t := v::text;
    p := strpos(t, '": ');
    IF p > 3 THEN
        k0 := substr(t, 3, p - 3);
        IF strpos(k0, '\') = 0 AND v - k0 = '{{}}' THEN
            v0 := v -> k0;
            RETURN '{{' || {schema}.uuid_forge_text(k0) || ':'
                || {schema}.uuid_forge_value(v0, place || '.' || k0, depth + 1) || '}}';
        END IF;
    END IF;
    kvs := jsonb_path_query_array(v, '$.keyvalue()');
    CASE jsonb_array_length(kvs)
    WHEN 0 THEN
        RETURN '{{}}';
    WHEN 1 THEN
        k0 := kvs -> 0 ->> 'key';
        v0 := kvs -> 0 -> 'value';
        RETURN '{{' || {schema}.uuid_forge_text(k0) || ':'
            || {schema}.uuid_forge_value(v0, place || '.' || k0, depth + 1) || '}}';
    WHEN 2 THEN
        k0 := kvs -> 0 ->> 'key';
        k1 := kvs -> 1 ->> 'key';
        IF {schema}.uuid_forge_plain_name(k0) AND {schema}.uuid_forge_plain_name(k1) THEN
            v0 := kvs -> 0 -> 'value';
            v1 := kvs -> 1 -> 'value';
            m0 := {schema}.uuid_forge_text(k0) || ':' || {schema}.uuid_forge_value(v0, place || '.' || k0, depth + 1);
            m1 := {schema}.uuid_forge_text(k1) || ':' || {schema}.uuid_forge_value(v1, place || '.' || k1, depth + 1);
            RETURN '{{' || CASE WHEN k0 COLLATE "C" < k1 COLLATE "C" THEN m0 || ',' || m1 ELSE m1 || ',' || m0 END
                || '}}';
        END IF;
    ELSE
        NULL;
    END CASE;
    SELECT bool_and({schema}.uuid_forge_plain_name(key)),
           string_agg({schema}.uuid_forge_text(key) || ':'
                      || {schema}.uuid_forge_value(value, place || '.' || key, depth + 1), ',' ORDER BY key COLLATE "C")
      INTO plain, body FROM jsonb_each(v);
    IF NOT plain THEN  -- NFC forms, duplicates after NFC, the UTF-16 order
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
    END IF;
    RETURN '{{' || coalesce(body, '') || '}}';
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
        || CASE WHEN args IS NULL THEN '[]' ELSE {schema}.uuid_forge_array(args, 'args', 0) END || ','
        || CASE WHEN kwargs IS NULL THEN '{{}}' ELSE {schema}.uuid_forge_object(kwargs, 'kwargs', 0) END || ','
        || {schema}.uuid_forge_text(coalesce(salt, '')) || ']';
END
$fn$;

-- a key as generate() takes it: an object holds named values, an array positional ones (the usual
-- object key is built here, one call fewer per row; the rest, and every error, by uuid_forge_name)
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_key_name(entity_type text, key jsonb, salt text)
RETURNS text LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $fn$
BEGIN
    IF entity_type <> '' AND jsonb_typeof(key) = 'object' THEN
        RETURN '["uuid-forge/1",' || {schema}.uuid_forge_text(entity_type) || ',[],'
            || {schema}.uuid_forge_object(key, 'kwargs', 0) || ','
            || {schema}.uuid_forge_text(coalesce(salt, '')) || ']';
    ELSIF jsonb_typeof(key) = 'array' THEN
        RETURN {schema}.uuid_forge_name(entity_type, key, NULL, salt);
    END IF;
    RETURN {schema}.uuid_forge_name(entity_type, NULL, key, salt);
END
$fn$;

-- The fast path of a backfill's usual key. C(s) of a non-empty text that is ASCII without a quote,
-- backslash or control character is s in quotes, else NULL. IMMUTABLE and inlined: with a constant
-- (the entity type, the salt) the planner folds it once per query, not once per row.
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_plain_text(s text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT CASE WHEN s <> '' AND octet_length(s) = length(s) AND s !~ '[\x01-\x1f"\\]' THEN '"' || s || '"' END
$fn$;

-- C(key) of an object of one or two members read from jsonb's own text ({{"a": v, "b": w}}), or
-- NULL for any other key (the general path then decides, errors included). Taken only when the
-- text is all ASCII (NFC already; UTF-16 order is byte order), a name holds no backslash (so no
-- quote either: it is its text), a value is a string (jsonb escapes as rule 7), an integer of at
-- most 21 digits, true, false or null, and the members' values read back by name are exactly the
-- text around them (so there is no third member, and no name or value was misread).
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_flat_object(key jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    t text := key::text;
    p int := strpos(t, '": ');
    k0 text;
    k1 text;
    v0 text;
    v1 text;
    rest text;
BEGIN
    IF p < 3 OR octet_length(t) <> length(t) OR left(t, 2) <> '{{"' THEN
        RETURN NULL;
    END IF;
    k0 := substr(t, 3, p - 3);
    rest := substr(t, p + 3, length(t) - p - 3);
    v0 := (key -> k0)::text;
    IF strpos(k0, '\') > 0 OR v0 IS NULL
       OR NOT (left(v0, 1) = '"' OR v0 IN ('true', 'false', 'null') OR v0 ~ '^-?[0-9]{{1,21}}$') THEN
        RETURN NULL;
    END IF;
    IF rest = v0 THEN
        RETURN '{{"' || k0 || '":' || v0 || '}}';
    END IF;
    IF left(rest, length(v0) + 3) <> v0 || ', "' THEN
        RETURN NULL;
    END IF;
    rest := substr(rest, length(v0) + 4);
    p := strpos(rest, '": ');
    k1 := substr(rest, 1, p - 1);
    v1 := (key -> k1)::text;
    IF p < 1 OR strpos(k1, '\') > 0 OR v1 IS NULL OR substr(rest, p + 3) <> v1
       OR NOT (left(v1, 1) = '"' OR v1 IN ('true', 'false', 'null') OR v1 ~ '^-?[0-9]{{1,21}}$') THEN
        RETURN NULL;
    END IF;
    IF k0 COLLATE "C" < k1 COLLATE "C" THEN
        RETURN '{{"' || k0 || '":' || v0 || ',"' || k1 || '":' || v1 || '}}';
    END IF;
    RETURN '{{"' || k1 || '":' || v1 || ',"' || k0 || '":' || v0 || '}}';
END
$fn$;

-- the name of a key: the fast name when every part of it is plain, else (NULL || ... is NULL) the
-- general path, with its errors. Inlined into the caller's query.
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_fast_key_name(entity_type text, key jsonb, salt text)
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT coalesce('["uuid-forge/1",' || {schema}.uuid_forge_plain_text(entity_type) || ',[],'
                    || {schema}.uuid_forge_flat_object(key) || ','
                    || coalesce({schema}.uuid_forge_plain_text(salt), CASE WHEN salt = '' THEN '""' END) || ']',
                    {schema}.uuid_forge_key_name(entity_type, key, salt))
$fn$;

CREATE OR REPLACE FUNCTION {schema}.uuid_forge_id(namespace uuid, entity_type text, key jsonb, salt text DEFAULT '')
RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $fn$
    SELECT {ossp}.uuid_generate_v5(namespace, {schema}.uuid_forge_fast_key_name(entity_type, key, salt))
$fn$;

-- keyed mode: HMAC-SHA256(secret, namespace bytes || name), first 16 bytes, version 8, RFC 9562 variant
CREATE OR REPLACE FUNCTION {schema}.uuid_forge_id_keyed(namespace uuid, entity_type text, key jsonb, salt text,
                                                        secret bytea)
RETURNS uuid LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $fn$
DECLARE
    d bytea;
BEGIN
    d := substring({pgcrypto}.hmac(uuid_send(namespace)
                                   || convert_to({schema}.uuid_forge_fast_key_name(entity_type, key, salt), 'UTF8'),
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

RESET check_function_bodies;
"""


def postgres_functions_sql(schema: str = "public", uuid_ossp_schema: str = "public",
                           pgcrypto_schema: str = "public") -> str:
    """The SQL that creates the functions in ``schema``, and the two extensions they use where they
    are missing. The functions name the extensions' schemas (no ``search_path`` is read or set per
    call: that would cost each row a configuration change, and would let a schema earlier in the
    caller's path stand in for ``uuid_generate_v5``)."""
    for what, name in (("schema", schema), ("uuid-ossp schema", uuid_ossp_schema),
                       ("pgcrypto schema", pgcrypto_schema)):
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise ValidationError(f"{what} {name!r} must be a lowercase SQL identifier (letters, digits, _; "
                                  "at most 63), e.g. public")
    return _SQL.format(schema=schema, ossp=uuid_ossp_schema, pgcrypto=pgcrypto_schema).lstrip("\n")
