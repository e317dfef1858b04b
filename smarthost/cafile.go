package smarthost

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// maxCAFileBytes bounds a CA file: a bundle of every public root is about
// 250 KiB, and a path such as /dev/zero must not exhaust memory.
const maxCAFileBytes = 1 << 20

// RootCAs returns the system roots plus the PEM certificates in caFile.
// The file must be a regular file of PEM CERTIFICATE blocks, every one of
// which parses. Errors name the file and the block, never its content: the
// path comes from an API client, and the file may be anything readable.
func RootCAs(caFile string) (*x509.CertPool, error) {
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if caFile == "" {
		return roots, nil
	}
	certs, err := readCAFile(caFile)
	if err != nil {
		return nil, err
	}
	for _, c := range certs {
		roots.AddCert(c)
	}
	return roots, nil
}

func readCAFile(caFile string) ([]*x509.Certificate, error) {
	f, err := os.Open(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file %s cannot be read: %w", caFile, errors.Unwrap(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("ca_file %s is not a regular file: give a PEM file of CA certificates", caFile)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCAFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("ca_file %s cannot be read: %w", caFile, errors.Unwrap(err))
	}
	if len(data) > maxCAFileBytes {
		return nil, fmt.Errorf("ca_file %s is larger than %d bytes: give a PEM file of CA certificates", caFile, maxCAFileBytes)
	}
	var certs []*x509.Certificate
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("ca_file %s: PEM block %d is not a CERTIFICATE: the file must hold CA certificates only", caFile, n)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("ca_file %s: PEM block %d is not a valid certificate", caFile, n)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("ca_file %s holds no PEM certificate: give a PEM file of CA certificates", caFile)
	}
	return certs, nil
}
