<?php
// Sends one message through the relay with PHPMailer.
// Settings and message come from the environment (see interop/run.sh).

use PHPMailer\PHPMailer\PHPMailer;
use PHPMailer\PHPMailer\SMTP;
use PHPMailer\PHPMailer\Exception;

require '/usr/share/php/libphp-phpmailer/autoload.php'; // Composer: require 'vendor/autoload.php';

$mail = new PHPMailer(true); // throw exceptions

// ErrorInfo says only "Could not authenticate." or "Could not connect to
// SMTP host." when AUTH or a TLS handshake fails: the relay's reply and the
// TLS error are in the debug stream. Keep those; drop the client's lines,
// which include the AUTH credentials.
$why = [];
$mail->SMTPDebug = SMTP::DEBUG_CONNECTION;
$mail->Debugoutput = function ($line) use (&$why) {
    if (preg_match('/^SERVER -> CLIENT: ([45]\d\d[ -].*)/s', $line, $m)) {
        $why[] = trim($m[1]);
    } elseif (preg_match('/^Connection failed\. Error #\d+: (.*?)( \[\/.*)?$/s', $line, $m)) {
        $why[] = trim(preg_replace('/\s+/', ' ', $m[1]));
    }
};

try {
    $mail->isSMTP();
    $mail->Host = getenv('SMTP_HOST');
    $mail->Port = (int) getenv('SMTP_PORT');
    $mail->SMTPSecure = getenv('SMTP_SECURITY') === 'implicit'
        ? PHPMailer::ENCRYPTION_SMTPS       // 465
        : PHPMailer::ENCRYPTION_STARTTLS;  // 587
    $mail->SMTPAuth = true;
    $mail->Username = getenv('SMTP_USER');
    $mail->Password = getenv('SMTP_PASS');
    if (getenv('SMTP_CA_FILE')) { // only for a certificate that is not publicly trusted
        $mail->SMTPOptions = ['ssl' => ['cafile' => getenv('SMTP_CA_FILE')]];
    }
    $mail->CharSet = PHPMailer::CHARSET_UTF8;

    $mail->setFrom(getenv('MAIL_FROM'), getenv('MAIL_FROM_NAME'));
    $mail->addAddress(getenv('MAIL_TO'));
    $mail->Subject = getenv('MAIL_SUBJECT');
    if (getenv('MAIL_HTML')) {
        $mail->isHTML(true);
        $mail->Body = getenv('MAIL_HTML');
        $mail->AltBody = getenv('MAIL_TEXT');
    } else {
        $mail->Body = getenv('MAIL_TEXT');
    }
    if (getenv('MAIL_ATTACHMENT')) {
        $mail->addAttachment(getenv('MAIL_ATTACHMENT'), getenv('MAIL_ATTACHMENT_NAME'),
            PHPMailer::ENCODING_BASE64, getenv('MAIL_ATTACHMENT_TYPE'));
    }
    $mail->send();
    echo "sent\n";
} catch (Exception $e) {
    $error = $mail->ErrorInfo;
    foreach (array_unique($why) as $reason) {
        if (!str_contains($error, preg_replace('/^\d{3} [\d.]+ /', '', $reason))) {
            $error .= ' (' . $reason . ')';
        }
    }
    fwrite(STDERR, $error . "\n");
    exit(1);
}
