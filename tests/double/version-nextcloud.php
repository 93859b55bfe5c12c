<?php 
// TEST DOUBLE (ocmigrate tests/double): version.php in the format of Nextcloud 33.0.1's release.
// lab/instance.sh installs this file as /var/www/owncloud/version.php for the nextcloud flavor.
$OC_Version = array(33,0,1,2);
$OC_VersionString = '33.0.1';
$OC_Edition = '';
$OC_Channel = 'stable';
$OC_VersionCanBeUpgradedFrom = array (
  'nextcloud' => 
  array (
    '32.0' => true,
    '33.0' => true,
  ),
  'owncloud' => 
  array (
    '10.13' => true,
    '10.14' => true,
    '10.15' => true,
    '10.16' => true,
  ),
);
$OC_Build = '2026-03-10T14:04:21+00:00 9b1f6c0a7d3e2f51c8a4b7e96d0f3a2c51e8b7d4';
$vendor = 'nextcloud';
