<?php
// Wins over everything before it.
$CONFIG = [
  'logtimezone' => 'Europe/Berlin',
  'memcache.locking' => '\OC\Memcache\Redis',
  'redis' => ['host' => 'localhost', 'port' => 6379, 'password' => 'redis-pw'],
];
