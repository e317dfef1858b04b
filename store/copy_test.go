package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"outbound/internal/pgtest"
)

func openTestBolt(t testing.TB, name string) (DB, *bolt.DB) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), name), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return Bolt(db), db
}

// bucketDump is a bucket's content and sequence, to compare stores.
type bucketDump struct {
	Seq  uint64
	Keys map[string]string
}

// dump reads every top-level bucket of a bbolt file.
func dump(t *testing.T, db *bolt.DB) map[string]bucketDump {
	t.Helper()
	out := map[string]bucketDump{}
	if err := db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			d := bucketDump{Seq: b.Sequence(), Keys: map[string]string{}}
			out[string(name)] = d
			return b.ForEach(func(k, v []byte) error { d.Keys[string(k)] = string(v); return nil })
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func put(t *testing.T, db DB, bucket string, seq uint64, kvs ...string) {
	t.Helper()
	if err := db.Update(func(tx Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte(bucket))
		if err != nil {
			return err
		}
		for i := 0; i+1 < len(kvs); i += 2 {
			if err := b.Put([]byte(kvs[i]), []byte(kvs[i+1])); err != nil {
				return err
			}
		}
		if seq > 0 {
			return b.SetSequence(seq)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// A populated source: a bucket of more keys than a batch, binary keys
// and an empty value among them, with a sequence; an empty bucket; and a
// bucket that is not asked for.
func populatedSource(t *testing.T) (DB, *bolt.DB) {
	src, raw := openTestBolt(t, "src.db")
	var kvs []string
	for i := 0; i < 2*copyBatch+37; i++ {
		kvs = append(kvs, fmt.Sprintf("key-%05d", i), fmt.Sprintf("value %d", i))
	}
	kvs = append(kvs, "\x00", "zero key", "\xff\xfe\x00", "\x00\x01binary value\xff", "empty", "")
	put(t, src, "events", 4242, kvs...)
	put(t, src, "users", 0, "alice@example.org", `{"name":"alice"}`)
	put(t, src, "empty", 7)
	put(t, src, "not-asked", 0, "k", "v")
	return src, raw
}

func TestCopyBoltToBolt(t *testing.T) {
	src, srcRaw := populatedSource(t)
	dst, dstRaw := openTestBolt(t, "dst.db")
	// dst has a key of its own, which stays, and a value of src's key
	// that src's replaces; its users sequence is ahead of src's.
	put(t, dst, "users", 99, "bob@example.org", "own", "alice@example.org", "stale")

	buckets := []string{"users", "events", "empty", "missing"}
	reports, err := Copy(dst, src, buckets)
	if err != nil {
		t.Fatalf("Copy: %v (%+v)", err, reports)
	}
	n := 2*copyBatch + 37 + 3
	want := []CopyReport{
		{Bucket: "users", SrcKeys: 1, Copied: 1, DstKeys: 2, Sequence: 0, Verified: true},
		{Bucket: "events", SrcKeys: n, Copied: n, DstKeys: n, Sequence: 4242, Verified: true},
		{Bucket: "empty", Sequence: 7, Verified: true},
		{Bucket: "missing", Missing: true},
	}
	if !reflect.DeepEqual(reports, want) {
		t.Errorf("reports:\n got %+v\nwant %+v", reports, want)
	}

	got, srcDump := dump(t, dstRaw), dump(t, srcRaw)
	if !reflect.DeepEqual(got["events"], srcDump["events"]) || !reflect.DeepEqual(got["empty"], srcDump["empty"]) {
		t.Errorf("events or empty differ from the source")
	}
	if u := got["users"]; u.Seq != 99 || len(u.Keys) != 2 || u.Keys["alice@example.org"] != `{"name":"alice"}` || u.Keys["bob@example.org"] != "own" {
		t.Errorf("users in dst: %+v", u)
	}
	if _, ok := got["missing"]; ok {
		t.Error("a bucket missing in the source was created in dst")
	}
	if _, ok := got["not-asked"]; ok {
		t.Error("a bucket not asked for was copied")
	}

	// Again: the same reports and the same dst.
	again, err := Copy(dst, src, buckets)
	if err != nil {
		t.Fatalf("second Copy: %v", err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("second run's reports:\n got %+v\nwant %+v", again, want)
	}
	if d := dump(t, dstRaw); !reflect.DeepEqual(d, got) {
		t.Error("a second run changed dst")
	}
}

// Into PostgreSQL, as store migrate copies: the same keys, values (binary,
// empty) and sequences as the file, read back through the Postgres store;
// a second run changes nothing.
func TestCopyBoltToPostgres(t *testing.T) {
	src, srcRaw := populatedSource(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dst, err := OpenPostgres(ctx, PostgresOptions{DSN: pgtest.Shared(t).NewDatabase(t), Node: "copy-test"})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	buckets := []string{"users", "events", "empty", "missing"}
	for run := 1; run <= 2; run++ {
		reports, err := Copy(dst, src, buckets)
		if err != nil {
			t.Fatalf("run %d: %v (%+v)", run, err, reports)
		}
		if n := 2*copyBatch + 37 + 3; reports[1].SrcKeys != n || reports[1].DstKeys != n || !reports[1].Verified || !reports[3].Missing {
			t.Errorf("run %d: reports %+v", run, reports)
		}
		want := dump(t, srcRaw)
		delete(want, "not-asked")
		if got := dumpDB(t, dst, append(buckets, "not-asked")); !reflect.DeepEqual(got, want) {
			t.Fatalf("run %d: PostgreSQL holds\n%v\nthe file\n%v", run, got, want)
		}
	}
}

// BenchmarkCopyToPostgres copies and verifies a bucket like the event
// log (10,000 keys, 200-byte values) from bbolt into a fresh PostgreSQL
// database each iteration: keys/s is the pace of `store migrate`.
func BenchmarkCopyToPostgres(b *testing.B) {
	const keys = 10000
	src, _ := openTestBolt(b, "src.db")
	value := bytes.Repeat([]byte("v"), 200)
	if err := src.Update(func(tx Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("events"))
		if err != nil {
			return err
		}
		for i := 0; i < keys; i++ {
			if err := bk.Put([]byte(fmt.Sprintf("%016x", i)), value); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	server := pgtest.Shared(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dst, err := OpenPostgres(context.Background(), PostgresOptions{DSN: server.NewDatabase(b), Node: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if _, err := Copy(dst, src, []string{"events"}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		dst.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(keys*b.N)/b.Elapsed().Seconds(), "keys/s")
}

// dumpDB reads the named buckets of db, like dump.
func dumpDB(t *testing.T, db DB, names []string) map[string]bucketDump {
	t.Helper()
	out := map[string]bucketDump{}
	if err := db.View(func(tx Tx) error {
		for _, name := range names {
			b := tx.Bucket([]byte(name))
			if b == nil {
				continue
			}
			d := bucketDump{Seq: b.Sequence(), Keys: map[string]string{}}
			out[name] = d
			if err := b.ForEach(func(k, v []byte) error { d.Keys[string(k)] = string(v); return nil }); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// Verify finds what differs: a changed value, a missing key, a sequence
// behind, a missing bucket; the first of them in key order.
func TestVerifyFindsMismatches(t *testing.T) {
	src, _ := populatedSource(t)
	dst, _ := openTestBolt(t, "dst.db")
	if _, err := Copy(dst, src, []string{"events", "users"}); err != nil {
		t.Fatal(err)
	}
	verify := func(bucket string) CopyReport {
		t.Helper()
		r := CopyReport{Bucket: bucket}
		if err := verifyBucket(dst, src, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := verify("events"); !r.Verified || r.Problem() != "" {
		t.Fatalf("after Copy: %+v", r)
	}

	// A value changed in dst after the copy, past the first batch; and a
	// key deleted further on: the changed one is reported, being first.
	put(t, dst, "events", 0, "key-00700", "changed")
	if err := dst.Update(func(tx Tx) error { return tx.Bucket([]byte("events")).Delete([]byte("key-00900")) }); err != nil {
		t.Fatal(err)
	}
	r := verify("events")
	if r.Verified || string(r.Mismatch) != "key-00700" || r.Problem() != `key "key-00700" has a different value in the destination` {
		t.Errorf("changed value: %+v, %q", r, r.Problem())
	}
	put(t, dst, "events", 0, "key-00700", "value 700")
	if r := verify("events"); r.Verified || string(r.Mismatch) != "key-00900" || r.Why != "missing in the destination" {
		t.Errorf("missing key: %+v", r)
	}
	// A binary key, quoted so that it prints.
	put(t, dst, "events", 0, "key-00900", "value 900", "\xff\xfe\x00", "other")
	if r := verify("events"); r.Verified || r.Problem() != `key "\xff\xfe\x00" has a different value in the destination` {
		t.Errorf("binary key: %q", r.Problem())
	}
	put(t, dst, "events", 0, "\xff\xfe\x00", "\x00\x01binary value\xff")
	if r := verify("events"); !r.Verified {
		t.Fatalf("restored: %+v", r)
	}

	// dst's sequence behind src's.
	put(t, src, "users", 10)
	if r := verify("users"); r.Verified || r.Mismatch != nil || r.Problem() != "sequence 0 in the destination, 10 in the source" {
		t.Errorf("sequence behind: %+v", r)
	}
	// The bucket gone from dst.
	if err := dst.Update(func(tx Tx) error { return tx.DeleteBucket([]byte("users")) }); err != nil {
		t.Fatal(err)
	}
	if r := verify("users"); r.Verified || r.Problem() != "bucket missing in the destination" {
		t.Errorf("bucket missing: %+v", r)
	}
}

// Copy itself fails with ErrVerify, and says where, when a write did not
// land (here a destination that drops one key's Put).
func TestCopyReportsFailedVerify(t *testing.T) {
	src, _ := populatedSource(t)
	dst, _ := openTestBolt(t, "dst.db")
	lossy := dropPut{DB: dst, key: []byte("key-00600")}
	reports, err := Copy(lossy, src, []string{"users", "events"})
	if !errors.Is(err, ErrVerify) || !strings.Contains(err.Error(), `events: key "key-00600" missing in the destination`) {
		t.Fatalf("err = %v", err)
	}
	if len(reports) != 2 || !reports[0].Verified || reports[1].Verified || string(reports[1].Mismatch) != "key-00600" {
		t.Errorf("reports: %+v", reports)
	}
}

// A nested bucket (only the queue has them) cannot be copied: an error,
// not a silently missing key.
func TestCopyRefusesNestedBuckets(t *testing.T) {
	_, srcRaw := openTestBolt(t, "src.db")
	if err := srcRaw.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("messages"))
		if err != nil {
			return err
		}
		_, err = b.CreateBucket([]byte("id1"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	dst, _ := openTestBolt(t, "dst.db")
	if _, err := Copy(dst, Bolt(srcRaw), []string{"messages"}); err == nil || !strings.Contains(err.Error(), "nested bucket") {
		t.Errorf("err = %v", err)
	}
}

// dropPut is a DB whose buckets ignore Puts of one key.
type dropPut struct {
	DB
	key []byte
}

func (d dropPut) Update(fn func(Tx) error) error {
	return d.DB.Update(func(tx Tx) error { return fn(dropPutTx{tx, d.key}) })
}

type dropPutTx struct {
	Tx
	key []byte
}

func (t dropPutTx) Bucket(name []byte) Bucket {
	if b := t.Tx.Bucket(name); b != nil {
		return dropPutBucket{b, t.key}
	}
	return nil
}

type dropPutBucket struct {
	Bucket
	key []byte
}

func (b dropPutBucket) Put(k, v []byte) error {
	if bytes.Equal(k, b.key) {
		return nil
	}
	return b.Bucket.Put(k, v)
}
