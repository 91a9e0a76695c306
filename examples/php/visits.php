<?php

declare(strict_types=1);

/**
 * A page that counts visits in PHP's own session (session_start()), stored by a session-shards
 * server. From the command line:
 *
 *   php visits.php tcp://127.0.0.1:6870 [<session id>] [logout]
 *
 * prints {"id", "before", "visits", "csrf"} as JSON: the session as session_start() found it,
 * then the new count. Under a web server, the id comes from the cookie as usual.
 * The token, if the server needs one, comes from SESSION_SHARDS_SERVER_TOKEN.
 */

require __DIR__ . '/SessionShardsHandler.php';

ini_set('session.serialize_handler', 'php_serialize'); // $_SESSION keys = the session's keys
ini_set('session.use_strict_mode', '1'); // unknown ids are refused (validateId), not adopted

$address = $argv[1] ?? 'tcp://127.0.0.1:6870';
$token = getenv('SESSION_SHARDS_SERVER_TOKEN');
session_set_save_handler(new SessionShardsHandler($address, $token === false ? null : $token), true);

if (PHP_SAPI === 'cli') {
    ini_set('session.use_cookies', '0');
    ini_set('session.cache_limiter', '');
    if (($argv[2] ?? '') !== '') {
        session_id($argv[2]);
    }
}

session_start();
$before = $_SESSION;

if (($argv[3] ?? $_GET['action'] ?? '') === 'logout') {
    session_destroy();
    echo json_encode(['id' => session_id(), 'before' => (object) $before, 'destroyed' => true], JSON_INVALID_UTF8_SUBSTITUTE), "\n";
    exit;
}

$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
$_SESSION['csrf'] ??= random_bytes(16); // binary: stored as { "$binary": base64 }
$_SESSION['last_visit'] = ['php' => PHP_VERSION, 'at' => time()];
$id = session_id();
session_write_close();

echo json_encode([
    'id' => $id,
    'before' => (object) $before,
    'visits' => $_SESSION['visits'],
    'csrf' => bin2hex($_SESSION['csrf']),
], JSON_INVALID_UTF8_SUBSTITUTE), "\n";
