<?php
$CONFIG = array (
  'instanceid' => 'oc8xq2m4l9v1',
  'passwordsalt' => 'Yw+3aPh9K2Z\'x\\q',
  'secret' => "tR7\x41\u{1F600}\$notavar\n",
  'trusted_domains' =>
  array (
    0 => 'localhost',
    1 => 'cloud.example.com',
  ),
  'datadirectory' => '/var/www/owncloud/data',
  'overwrite.cli.url' => 'https://cloud.example.com',
  'dbtype' => 'mysql',
  'version' => '10.15.2.0',
  'dbname' => 'owncloud',
  'dbhost' => 'localhost:3306',
  'dbtableprefix' => 'oc_',
  'mysql.utf8mb4' => true,
  'dbuser' => 'owncloud',
  'dbpassword' => 'p@ss"word',
  'installed' => TRUE,
  'maintenance' => false,
  'loglevel' => 2,
  'memcache.local' => '\OC\Memcache\APCu',
  'redis' => ['host' => '/var/run/redis.sock', 'port' => 0, 'timeout' => 1.5],
  'apps_paths' => [
    ['path' => '/var/www/owncloud/apps', 'url' => '/apps', 'writable' => false],
    ['path' => OC::$SERVERROOT . '/apps-external', 'url' => '/apps-external', 'writable' => true],
  ],
  'filelocking.ttl' => 60 * 60,
  'log_rotate_size' => 100 * 1024 * 1024,
  'skeletondirectory' => '', // none
  # a shell comment
  /* a block comment */
  'htaccess.RewriteBase' => '/',
  -1 => 0x1F, 07 => 0b101, '1e3' => 1e3,
  'n' => NULL,
);
$CONFIG['extra'][] = 'pushed';
