package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"outbound/admin"
	"outbound/capture"
)

// captureCommand shows what the capture route kept instead of sending
// ([default_route] mode = "capture", the embedded defaults).
func (e *cliEnv) captureCommand(args []string) error {
	return subcommands("capture", "capture needs a subcommand: list, show, delete, clear", args, map[string]func([]string) error{
		"list":   e.captureList,
		"show":   e.captureShow,
		"delete": e.captureDelete,
		"clear":  e.captureClear,
	})
}

func (e *cliEnv) captureList(args []string) error {
	fs := newFlags("capture list")
	to := fs.String("to", "", "only messages to a recipient containing this")
	subject := fs.String("subject", "", "only messages whose subject contains this")
	asJSON := fs.Bool("json", false, "print JSON")
	if pos, err := parseInterspersed(fs, args); err != nil {
		return err
	} else if len(pos) != 0 {
		return usagef("usage: outbound capture list [--to ADDR] [--subject TEXT] [--json]")
	}
	list := func(c *admin.Client) ([]capture.Message, error) { return c.Captured(*to, *subject) }
	return fetch(e, *asJSON, list, printCaptured)
}

func printCaptured(w io.Writer, list []capture.Message) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "ID\tCAPTURED\tFROM\tTO\tSIZE\tSUBJECT")
	for _, m := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\n", m.ID, m.Captured.Local().Format(time.DateTime),
			dash(m.From), strings.Join(m.To, ","), m.Size, m.Subject)
	}
	return tw.Flush()
}

func (e *cliEnv) captureShow(args []string) error {
	fs := newFlags("capture show")
	raw := fs.Bool("raw", false, "print the message exactly as it would have been sent")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("usage: outbound capture show ID [--raw] [--json]")
	}
	show := func(c *admin.Client) (*admin.CapturedMessage, error) { return c.CapturedMessage(pos[0]) }
	return fetch(e, *asJSON, show, func(w io.Writer, m *admin.CapturedMessage) error {
		if *raw {
			if !m.Redacted.IsZero() {
				return fmt.Errorf("the content of %s was removed by retention on %s", m.ID, m.Redacted.Local().Format(time.DateTime))
			}
			_, err := w.Write(m.Body)
			return err
		}
		return printCapturedMessage(w, m)
	})
}

func printCapturedMessage(w io.Writer, m *admin.CapturedMessage) error {
	fmt.Fprintf(w, "ID:        %s\nCaptured:  %s\nUser:      %s\nFrom:      %s\nTo:        %s\nSize:      %d bytes\n",
		m.ID, m.Captured.Local().Format(time.DateTime), dash(m.User), dash(m.From), strings.Join(m.To, ", "), m.Size)
	if !m.Redacted.IsZero() {
		_, err := fmt.Fprintf(w, "Content:   removed by retention on %s\n", m.Redacted.Local().Format(time.DateTime))
		return err
	}
	fmt.Fprintln(w, "\nHeaders:")
	for _, h := range m.Parts.Headers {
		fmt.Fprintf(w, "  %s: %s\n", h.Name, h.Value)
	}
	if m.Parts.Text != "" {
		fmt.Fprintf(w, "\nText:\n%s\n", strings.TrimRight(m.Parts.Text, "\r\n"))
	}
	if m.Parts.HTML != "" {
		fmt.Fprintf(w, "\nHTML: %d bytes (the web interface shows it; --raw prints the message)\n", len(m.Parts.HTML))
	}
	for _, a := range m.Parts.Attachments {
		fmt.Fprintf(w, "Attachment: %s (%s, %d bytes)\n", dash(a.Filename), a.ContentType, a.Size)
	}
	return nil
}

func (e *cliEnv) captureDelete(args []string) error {
	if len(args) != 1 {
		return usagef("usage: outbound capture delete ID")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	if err := c.DeleteCaptured(args[0]); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "captured message %s deleted\n", args[0])
	return nil
}

func (e *cliEnv) captureClear(args []string) error {
	if len(args) != 0 {
		return usagef("usage: outbound capture clear")
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	n, err := c.ClearCaptured()
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%d captured messages deleted\n", n)
	return nil
}
