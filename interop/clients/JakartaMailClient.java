// Sends one message through the relay with Jakarta Mail.
// Settings and message come from the environment (see interop/run.sh).
// Run: java -cp /usr/share/java/jakarta-mail.jar:/usr/share/java/jakarta-activation.jar JakartaMailClient.java

import jakarta.mail.Message;
import jakarta.mail.MessagingException;
import jakarta.mail.Session;
import jakarta.mail.Transport;
import jakarta.mail.internet.InternetAddress;
import jakarta.mail.internet.MimeBodyPart;
import jakarta.mail.internet.MimeMessage;
import jakarta.mail.internet.MimeMultipart;
import java.io.FileInputStream;
import java.io.InputStream;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.Properties;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class JakartaMailClient {
    public static void main(String[] args) throws Exception {
        var env = System.getenv();
        boolean implicit = env.get("SMTP_SECURITY").equals("implicit");

        Properties props = new Properties();
        props.put("mail.smtp.host", env.get("SMTP_HOST"));
        props.put("mail.smtp.port", env.get("SMTP_PORT"));
        props.put("mail.smtp.auth", "true");
        if (implicit) {
            props.put("mail.smtp.ssl.enable", "true");          // 465
        } else {
            props.put("mail.smtp.starttls.enable", "true");     // 587
            props.put("mail.smtp.starttls.required", "true");
        }
        props.put("mail.smtp.ssl.checkserveridentity", "true"); // off by default in Jakarta Mail 2.0
        props.put("mail.smtp.connectiontimeout", "30000");
        props.put("mail.smtp.timeout", "30000");
        String caFile = env.getOrDefault("SMTP_CA_FILE", "");
        if (!caFile.isEmpty()) {                                 // only for a private CA
            props.put("mail.smtp.ssl.socketFactory", trusting(caFile).getSocketFactory());
            // Else a failed handshake is retried with the JVM's default
            // factory, whose "PKIX path building failed" hides the real cause.
            props.put("mail.smtp.socketFactory.fallback", "false");
        }
        Session session = Session.getInstance(props);

        MimeMessage msg = new MimeMessage(session);
        msg.setFrom(new InternetAddress(env.get("MAIL_FROM"), env.get("MAIL_FROM_NAME"), "UTF-8"));
        msg.setRecipients(Message.RecipientType.TO, InternetAddress.parse(env.get("MAIL_TO")));
        msg.setSubject(env.get("MAIL_SUBJECT"), "UTF-8");

        // The body: text, or text and HTML as multipart/alternative ...
        String text = env.get("MAIL_TEXT"), html = env.getOrDefault("MAIL_HTML", "");
        MimeBodyPart body = new MimeBodyPart();
        if (html.isEmpty()) {
            body.setText(text, "UTF-8");
        } else {
            MimeBodyPart textPart = new MimeBodyPart(), htmlPart = new MimeBodyPart();
            textPart.setText(text, "UTF-8");
            htmlPart.setText(html, "UTF-8", "html");
            body.setContent(new MimeMultipart("alternative", textPart, htmlPart));
        }
        // ... alone, or in multipart/mixed with an attachment.
        String attachment = env.getOrDefault("MAIL_ATTACHMENT", "");
        if (attachment.isEmpty()) {
            msg.setContent(body.getContent(), body.getContentType());
        } else {
            MimeBodyPart file = new MimeBodyPart();
            file.attachFile(attachment, env.get("MAIL_ATTACHMENT_TYPE"), "base64");
            file.setFileName(env.get("MAIL_ATTACHMENT_NAME"));
            msg.setContent(new MimeMultipart("mixed", body, file));
        }

        try {
            Transport.send(msg, env.get("SMTP_USER"), env.get("SMTP_PASS"));
        } catch (MessagingException e) {
            // The relay's reply is in the message: AuthenticationFailedException,
            // SMTPSendFailedException, or a nested SMTPAddressFailedException
            // for a refused recipient (toString() includes nested exceptions).
            System.err.println(e);
            System.exit(1);
        }
        System.out.println("sent");
    }

    // An SSLContext that trusts only the CA certificates in a PEM file.
    static SSLContext trusting(String pemFile) throws Exception {
        KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
        ks.load(null, null);
        try (InputStream in = new FileInputStream(pemFile)) {
            int i = 0;
            for (var cert : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                ks.setCertificateEntry("ca" + i++, cert);
            }
        }
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, tmf.getTrustManagers(), null);
        return ctx;
    }
}
