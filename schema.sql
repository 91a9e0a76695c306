-- session-shards schema: apply to every store (idempotent).
-- Generated from lib/schema.ts; test/schema.ts keeps the two equal.
CREATE TABLE IF NOT EXISTS `sessions` (
  id VARBINARY(128) NOT NULL,
  version BIGINT UNSIGNED NOT NULL,
  expires_at BIGINT NOT NULL,
  deleted TINYINT NOT NULL DEFAULT 0,
  data MEDIUMBLOB NULL,
  ttl_seconds INT UNSIGNED NULL,
  owner VARBINARY(255) NULL,
  PRIMARY KEY (id),
  KEY `sessions_expires_at` (expires_at),
  KEY `sessions_owner` (owner)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `sessions_hints` (
  target_store VARBINARY(64) NOT NULL,
  id VARBINARY(128) NOT NULL,
  created_at BIGINT NOT NULL,
  version BIGINT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (target_store, id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `sessions_locks` (
  id VARBINARY(128) NOT NULL,
  token VARBINARY(64) NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `sessions_stale` (
  target_store VARBINARY(64) NOT NULL,
  manager VARBINARY(64) NOT NULL,
  generation BIGINT UNSIGNED NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (target_store, manager)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS `sessions_peers` (
  manager VARBINARY(64) NOT NULL,
  fingerprint VARBINARY(64) NOT NULL,
  config BLOB NOT NULL,
  expires_at BIGINT NOT NULL,
  PRIMARY KEY (manager)
) ENGINE=InnoDB;
