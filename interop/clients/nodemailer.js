// Sends one message through the relay with Nodemailer.
// Settings and message come from the environment (see interop/run.sh).
const fs = require("fs");
const nodemailer = require("nodemailer");

const env = process.env;

const transporter = nodemailer.createTransport({
  host: env.SMTP_HOST,                      // the relay's host name, as in its certificate
  port: Number(env.SMTP_PORT),              // 465 or 587
  secure: env.SMTP_SECURITY === "implicit", // true: TLS from the start (465)
  requireTLS: true,                         // on 587: STARTTLS or give up, never AUTH in the clear
  auth: { user: env.SMTP_USER, pass: env.SMTP_PASS },
  // Only for a relay whose certificate is not publicly trusted:
  tls: env.SMTP_CA_FILE ? { ca: [fs.readFileSync(env.SMTP_CA_FILE)] } : {},
});

const message = {
  from: { name: env.MAIL_FROM_NAME, address: env.MAIL_FROM },
  to: env.MAIL_TO,
  subject: env.MAIL_SUBJECT,
  text: env.MAIL_TEXT,
};
if (env.MAIL_HTML) message.html = env.MAIL_HTML;
if (env.MAIL_ATTACHMENT) {
  message.attachments = [{
    filename: env.MAIL_ATTACHMENT_NAME,
    contentType: env.MAIL_ATTACHMENT_TYPE,
    content: fs.readFileSync(env.MAIL_ATTACHMENT),
  }];
}

transporter.sendMail(message).then(
  (info) => console.log(info.response),        // "250 2.0.0 Ok: queued as ..."
  (err) => {
    console.error(err.message);                 // includes the relay's reply text
    process.exit(1);
  },
);
