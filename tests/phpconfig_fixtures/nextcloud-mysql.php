<?php
$CONFIG = array (
  'passwordsalt' => 'Yx+0vN9m3lq8W1QwZ2ep0m3Lq8W1Qw',
  'secret' => 'a4hT1O3/0p9e4M2Q8tW6yR0uI2oP4aS6dF8gH0jK2lZ4xC6v',
  'trusted_domains' => 
  array (
    0 => 'localhost',
  ),
  'datadirectory' => '/var/www/nextcloud/data',
  'dbtype' => 'mysql',
  'version' => '33.0.1.2',
  'overwrite.cli.url' => 'http://localhost',
  'dbname' => 'nextcloud',
  'dbhost' => '127.0.0.1:3307',
  'dbtableprefix' => 'oc_',
  'mysql.utf8mb4' => true,
  'dbuser' => 'nextcloud',
  'dbpassword' => 'p@ss\'word\\with"quotes',
  'instanceid' => 'ocdnnl5k6eg6',
  'installed' => true,
  'maintenance' => false,
  'memcache.local' => '\\OC\\Memcache\\APCu',
  'memcache.distributed' => '\\OC\\Memcache\\Redis',
  'memcache.locking' => '\\OC\\Memcache\\Redis',
  'redis' => 
  array (
    'host' => '/run/redis/redis-server.sock',
    'port' => 0,
    'timeout' => 1.5,
  ),
);
