<?php
$CONFIG = array (
  'passwordsalt' => 'pGhr3XBtsJ+8YQ2y4C0RyqAyqB3Kso',
  'secret' => 'Wm3mRLCnX8LXvu/ld8Gp2Yo0FpX8vJNH0z4UNSVdN0yvjIWq',
  'trusted_domains' => 
  array (
    0 => 'localhost',
    1 => '127.0.0.1',
  ),
  'datadirectory' => '/var/www/owncloud/data',
  'overwrite.cli.url' => 'http://localhost',
  'dbtype' => 'sqlite',
  'version' => '10.15.2.0',
  'allow_user_to_change_mail_address' => '',
  'logtimezone' => 'UTC',
  'apps_paths' => 
  array (
    0 => 
    array (
      'path' => '/var/www/owncloud/apps',
      'url' => '/apps',
      'writable' => false,
    ),
    1 => 
    array (
      'path' => '/var/www/owncloud/apps-external',
      'url' => '/apps-external',
      'writable' => true,
    ),
  ),
  'installed' => true,
  'instanceid' => 'oc8x1k2v9q3z',
  'maintenance' => false,
  'memcache.local' => '\\OC\\Memcache\\APCu',
  'filelocking.ttl' => 3600,
  'session_lifetime' => 86400.0,
);
