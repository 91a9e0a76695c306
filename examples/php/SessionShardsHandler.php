<?php

declare(strict_types=1);

/**
 * PHP sessions kept by a session-shards server, over its line protocol (docs/server.md).
 *
 * Use it with session.serialize_handler=php_serialize: each key of $_SESSION is then a key of
 * the stored session, which apps using the library read as JSON. Strings travel as raw bytes
 * (binary-safe); other values as JSON (PHP objects come back as arrays). A request holds the
 * session's lock from session_start() to session_write_close(), as PHP's file handler does.
 *
 *   session_set_save_handler(new SessionShardsHandler('tcp://127.0.0.1:6870'), true);
 *   session_start();
 */
final class SessionShardsHandler implements
    SessionHandlerInterface,
    SessionIdInterface,
    SessionUpdateTimestampHandlerInterface
{
    /** @var resource|null */
    private $socket = null;
    private ?string $openId = null;
    /** @var list<string> keys stored when read, so that keys unset in PHP are removed */
    private array $keys = [];

    public function __construct(
        private string $address = 'tcp://127.0.0.1:6870',
        private ?string $token = null,
        private float $timeoutSeconds = 10.0,
    ) {
    }

    public function open(string $path, string $name): bool
    {
        $socket = stream_socket_client($this->address, $errno, $error, $this->timeoutSeconds);
        if ($socket === false) {
            throw new RuntimeException("session-shards server at {$this->address}: $error");
        }
        stream_set_timeout($socket, (int) ceil($this->timeoutSeconds));
        $this->socket = $socket;
        if ($this->token !== null) {
            $this->call(["auth {$this->token}"]);
        }
        return true;
    }

    public function read(string $id): string|false
    {
        [, $json] = $this->call(["open $id w", 'get_all']);
        $this->openId = $id;
        $values = json_decode($json, true, 512, JSON_THROW_ON_ERROR);
        $this->keys = array_map('strval', array_keys($values));
        foreach ($values as $key => $value) {
            // Bytes that are not UTF-8 are stored as { "$binary": base64 }.
            if (is_array($value) && array_keys($value) === ['$binary']) {
                $values[$key] = base64_decode($value['$binary'], true);
            }
        }
        return $values === [] ? '' : serialize($values);
    }

    public function write(string $id, string $data): bool
    {
        $values = $data === '' ? [] : unserialize($data, ['allowed_classes' => false]);
        $requests = [];
        foreach (array_diff($this->keys, array_map('strval', array_keys($values))) as $key) {
            $requests[] = 'remove ' . rawurlencode($key);
        }
        $json = [];
        foreach ($values as $key => $value) {
            if (is_string($value)) {
                $requests[] = ['put ' . rawurlencode((string) $key), $value];
            } else {
                $json[$key] = $value;
            }
        }
        if ($json !== []) {
            $requests[] = ['put_all', json_encode($json, JSON_THROW_ON_ERROR)];
        }
        $requests[] = 'commit';
        $this->call($requests);
        $this->keys = array_map('strval', array_keys($values));
        return true;
    }

    public function updateTimestamp(string $id, string $data): bool
    {
        return $this->write($id, $data); // a commit also renews the expiry
    }

    public function create_sid(): string
    {
        // The server makes the id (signed, when the stores' manager has secrets).
        return $this->call(['new', 'close'])[0];
    }

    public function validateId(string $id): bool
    {
        try {
            return $this->call(["exists $id"])[0] === '1';
        } catch (RuntimeException $error) {
            // A malformed or unsigned id is no session: PHP makes a new one.
            if (str_contains($error->getMessage(), 'err INVALID_SESSION_ID')) {
                return false;
            }
            throw $error;
        }
    }

    public function destroy(string $id): bool
    {
        $this->call($id === $this->openId ? ['destroy'] : ["open $id w", 'destroy']);
        $this->openId = null;
        return true;
    }

    public function close(): bool
    {
        if ($this->socket !== null) {
            $this->call(['close']); // releases the lock; uncommitted changes are dropped
            fclose($this->socket);
            $this->socket = null;
        }
        $this->openId = null;
        return true;
    }

    public function gc(int $max_lifetime): int|false
    {
        return 0; // the stores expire sessions themselves
    }

    /**
     * Sends the requests at once (a request is a line, or [line, payload]) and reads an answer
     * for each; returns their payloads or words, or throws with the first `err`.
     *
     * @param list<string|array{string, string}> $requests
     * @return list<string>
     */
    private function call(array $requests): array
    {
        $bytes = '';
        foreach ($requests as $request) {
            $bytes .= is_array($request)
                ? $request[0] . ' ' . strlen($request[1]) . "\n" . $request[1] . "\n"
                : $request . "\n";
        }
        for ($sent = 0; $sent < strlen($bytes); $sent += $written) {
            $written = fwrite($this->socket, substr($bytes, $sent));
            if ($written === false || $written === 0) {
                throw new RuntimeException('session-shards server: the connection was lost');
            }
        }
        $answers = [];
        $error = null;
        foreach ($requests as $_) {
            $line = rtrim((string) fgets($this->socket), "\n");
            if (preg_match('/^ok [sbj] (\d+)$/', $line, $match)) {
                $answers[] = $this->readBytes((int) $match[1]);
                $this->readBytes(1); // the LF after the payload
            } elseif ($line === 'ok' || str_starts_with($line, 'ok ')) {
                $answers[] = substr($line, 3);
            } else {
                $error ??= $line === '' ? 'the connection was lost' : $line;
                $answers[] = '';
            }
        }
        if ($error !== null) {
            throw new RuntimeException("session-shards server: $error");
        }
        return $answers;
    }

    private function readBytes(int $length): string
    {
        $bytes = '';
        while (strlen($bytes) < $length) {
            $chunk = fread($this->socket, $length - strlen($bytes));
            if ($chunk === false || $chunk === '') {
                throw new RuntimeException('session-shards server: the connection was lost');
            }
            $bytes .= $chunk;
        }
        return $bytes;
    }
}
