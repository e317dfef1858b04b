-- The buckets of package store: one row per bucket (its NextSequence
-- counter) and one row per key. Every node reads and writes them.
CREATE TABLE kv_buckets (
	name bytea PRIMARY KEY,
	seq bigint NOT NULL DEFAULT 0
);

-- A key of a bucket; deleting the bucket's row deletes its keys.
CREATE TABLE kv (
	bucket bytea NOT NULL REFERENCES kv_buckets (name) ON DELETE CASCADE,
	key bytea NOT NULL,
	value bytea NOT NULL,
	PRIMARY KEY (bucket, key)
);

-- The buckets some node mirrors or watches: changes to their keys are
-- announced on channel outbound_kv. Rows are only added (a node that stops
-- watching costs the others a notification they ignore).
CREATE TABLE kv_notify (
	bucket bytea PRIMARY KEY
);

-- Announces a changed key of a watched bucket as "hex(bucket) hex(key)".
-- PostgreSQL refuses payloads of 8000 bytes or more: for a longer key the
-- key is left empty, which tells the nodes to re-read the whole bucket.
CREATE FUNCTION kv_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	r kv;
	payload text;
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := OLD;
	ELSE
		r := NEW;
	END IF;
	IF EXISTS (SELECT 1 FROM kv_notify WHERE bucket = r.bucket) THEN
		payload := encode(r.bucket, 'hex') || ' ' || encode(r.key, 'hex');
		IF length(payload) > 7000 THEN
			payload := encode(r.bucket, 'hex') || ' ';
		END IF;
		PERFORM pg_notify('outbound_kv', payload);
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER kv_notify AFTER INSERT OR UPDATE OR DELETE ON kv
	FOR EACH ROW EXECUTE FUNCTION kv_notify();

-- A bucket made or deleted (even empty) is announced with an empty key:
-- the nodes re-read it whole.
CREATE FUNCTION kv_buckets_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	r kv_buckets;
BEGIN
	IF TG_OP = 'DELETE' THEN
		r := OLD;
	ELSE
		r := NEW;
	END IF;
	IF EXISTS (SELECT 1 FROM kv_notify WHERE bucket = r.name) THEN
		PERFORM pg_notify('outbound_kv', encode(r.name, 'hex') || ' ');
	END IF;
	RETURN NULL;
END
$$;

CREATE TRIGGER kv_buckets_notify AFTER INSERT OR DELETE ON kv_buckets
	FOR EACH ROW EXECUTE FUNCTION kv_buckets_notify();

-- The relay nodes sharing the database: each upserts its row every 10
-- seconds (seen); a node counts the others seen in the last minute.
CREATE TABLE nodes (
	name text PRIMARY KEY,
	started timestamptz NOT NULL,
	seen timestamptz NOT NULL
);
