/** The SQL a local store runs at its first start: the database, the user and its password. */
import { randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'

/** Name of the database every local store serves. */
export const STORE_DATABASE = 'session_shards'
/** The account tests and the session manager log in with. */
export const STORE_USER = 'shards'

/** A password with only URL- and SQL-safe characters. */
export function randomPassword(): string {
  return randomBytes(18).toString('base64url')
}

function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

/**
 * Writes the SQL the server runs at every start (`--init-file`): idempotent statements that make
 * sure the database and the user exist with the current password. Mode 0600, as the password is
 * in it.
 */
export async function writeInitFile(file: string, password: string): Promise<void> {
  const account = `${sqlString(STORE_USER)}@'127.0.0.1'`
  const statements = [
    `CREATE DATABASE IF NOT EXISTS \`${STORE_DATABASE}\`;`,
    `CREATE USER IF NOT EXISTS ${account} IDENTIFIED BY ${sqlString(password)};`,
    `ALTER USER ${account} IDENTIFIED BY ${sqlString(password)};`,
    `GRANT ALL PRIVILEGES ON *.* TO ${account} WITH GRANT OPTION;`,
  ]
  // The server reads one statement per line.
  await writeFile(file, statements.join('\n') + '\n', { mode: 0o600 })
}
