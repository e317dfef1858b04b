# Sends one message through the relay with the Ruby `mail` gem.
# Settings and message come from the environment (see interop/run.sh).
require "mail"

# Two bugs of mail 2.7 (Debian 12's ruby-mail), both fixed in mail 2.8:
# it dot-stuffs lines that are a lone "." although Net::SMTP does too, so
# the recipient gets ".." (mikel/mail#1372); and it writes each line break
# of a quoted-printable part as "=0D" + CRLF, an extra CR on every line
# (mikel/mail#1420; avoided below with transport_encoding "8bit").
if Gem::Version.new(Mail::VERSION.version) < Gem::Version.new("2.8")
  Mail::SMTPConnection.prepend(Module.new { private def dot_stuff(message) = message })
end

implicit = ENV["SMTP_SECURITY"] == "implicit"
Mail.defaults do
  delivery_method :smtp,
    address: ENV["SMTP_HOST"],
    port: Integer(ENV["SMTP_PORT"]),
    user_name: ENV["SMTP_USER"],
    password: ENV["SMTP_PASS"],
    authentication: :plain,
    tls: implicit,                # 465: TLS from the start
    enable_starttls: !implicit,   # 587: STARTTLS, required
    openssl_verify_mode: "peer",
    ca_file: ENV["SMTP_CA_FILE"], # only for a certificate that is not publicly trusted
    domain: "localhost"           # the EHLO name
end

text, html = ENV["MAIL_TEXT"], ENV["MAIL_HTML"].to_s
mail = Mail.new do
  from    Mail::Address.new(ENV["MAIL_FROM"]).tap { |a| a.display_name = ENV["MAIL_FROM_NAME"] }.to_s
  to      ENV["MAIL_TO"]
  subject ENV["MAIL_SUBJECT"]
  self.charset = "UTF-8"
  transport_encoding "8bit" # not quoted-printable: see mikel/mail#1420 above
  text_part do
    content_type "text/plain; charset=UTF-8"
    body text
  end
  unless html.empty?
    html_part do
      content_type "text/html; charset=UTF-8"
      body html
    end
  end
end
unless ENV["MAIL_ATTACHMENT"].to_s.empty?
  mail.attachments[ENV["MAIL_ATTACHMENT_NAME"]] = {
    mime_type: ENV["MAIL_ATTACHMENT_TYPE"],
    content: File.binread(ENV["MAIL_ATTACHMENT"]),
  }
end

begin
  mail.deliver!
  puts "sent"
rescue Net::SMTPError, OpenSSL::SSL::SSLError, SystemCallError, Net::ReadTimeout, Net::OpenTimeout => e
  # Net::SMTPAuthenticationError, Net::SMTPFatalError and
  # Net::SMTPServerBusy carry the relay's reply: "535 5.7.8 ...".
  warn "#{e.class}: #{e.message}"
  exit 1
end
