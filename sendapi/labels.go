package sendapi

import (
	"fmt"
	"sort"
	"unicode"
	"unicode/utf8"
)

// Limits on a message's tags and metadata. They are stored with the
// message and copied into every one of its events and webhook payloads,
// so they are kept small: labels to find a message by, not content.
const (
	maxTags           = 10
	maxTagBytes       = 64
	maxMetadataKeys   = 20
	maxMetaKeyBytes   = 64
	maxMetaValueBytes = 512
)

// checkLabels checks the request's tags and metadata against the limits,
// naming the field at fault (tags[2], metadata.order_id).
func checkLabels(r *Request) *fieldError {
	if len(r.Tags) > maxTags {
		return badField("tags", "at most %d tags, not %d", maxTags, len(r.Tags))
	}
	seen := map[string]bool{}
	for i, t := range r.Tags {
		field := fmt.Sprintf("tags[%d]", i)
		if fe := checkLabel(field, "a tag", t, maxTagBytes); fe != nil {
			return fe
		}
		if seen[t] {
			return badField(field, "%q is given twice", t)
		}
		seen[t] = true
	}
	if len(r.Metadata) > maxMetadataKeys {
		return badField("metadata", "at most %d keys, not %d", maxMetadataKeys, len(r.Metadata))
	}
	// In key order, so the same request always names the same field.
	keys := make([]string, 0, len(r.Metadata))
	for k := range r.Metadata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		field := "metadata." + k
		if fe := checkLabel(field, "a metadata key", k, maxMetaKeyBytes); fe != nil {
			return fe
		}
		if v := r.Metadata[k]; len(v) > maxMetaValueBytes {
			return badField(field, "a metadata value is at most %d bytes, this one is %d", maxMetaValueBytes, len(v))
		}
	}
	return nil
}

// checkLabel holds a tag or metadata key to 1..max bytes of printable
// characters: it is shown in listings and logs, where control characters
// or line breaks would mislead.
func checkLabel(field, what, s string, max int) *fieldError {
	if s == "" {
		return badField(field, "%s cannot be empty", what)
	}
	if len(s) > max {
		return badField(field, "%s is at most %d bytes, this one is %d", what, max, len(s))
	}
	if !utf8.ValidString(s) {
		return badField(field, "%s must be UTF-8", what)
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return badField(field, "%s must be printable (no control characters or line breaks): %q", what, s)
		}
	}
	return nil
}
