package main

import (
	"context"
	"sync"
	"time"
)

// stop closes the listeners (letting sessions in DATA finish), stops the
// delivery workers after their current attempt, and closes the database.
func (s *server) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, c := range s.closers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c(ctx)
		}()
	}
	wg.Wait()
	s.listeners.Wait()
	select {
	case <-s.done:
	default:
		close(s.done)
	}
	if s.deliveryStarted {
		<-s.delivered
	}
	if s.webhooksDone != nil {
		<-s.webhooksDone // its last outcome is stored before the DB closes
	}
	if s.shipped != nil {
		<-s.shipped // its outbox is read from db
	}
	if s.db != nil {
		s.db.Close()
	}
	s.st.close()
}
