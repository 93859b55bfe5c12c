<?php 
// TEST DOUBLE (ocmigrate tests/double): version.php in the format of ownCloud 10.15.2's release.
// lab/instance.sh installs this file as /var/www/owncloud/version.php for the owncloud flavor.
$OC_Version = array(10,15,2,0);
$OC_VersionString = '10.15.2';
$OC_Edition = 'Community';
$OC_Channel = 'stable';
$OC_VersionCanBeUpgradedFrom = array(array(10,14),array(10,15));
$OC_Build = '2025-05-06T09:18:19+00:00 0d64a2ba7f1d91bca7a2e7b6f0e2dc44b1e1cd5b';
$vendor = 'owncloud';
