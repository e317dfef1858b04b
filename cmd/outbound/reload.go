package main

import "log/slog"

// reloadCertificate answers SIGHUP: new connections get the certificate
// now in the files; if it does not load, the current one stays.
func (s *server) reloadCertificate(log *slog.Logger) {
	if s.cert.acme != nil {
		log.Info("SIGHUP: the certificate is managed over ACME and renewed by itself; nothing to reload")
		return
	}
	leaf, err := s.cert.reload()
	if err != nil {
		log.Error("certificate reload failed; keeping the current certificate", "err", err)
		return
	}
	log.Info("certificate reloaded", "path", s.cert.path, "subject", leaf.Subject.CommonName,
		"names", leaf.DNSNames, "not_after", leaf.NotAfter)
}
