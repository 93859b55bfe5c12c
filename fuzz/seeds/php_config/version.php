<?php
$OC_Version = array(10,15,2,0);
$OC_VersionString = '10.15.2';
$OC_Edition = 'Community';
$OC_Channel = 'stable';
$OC_VersionCanBeUpgradedFrom = array(array(10, 13), array(10,14,0,3));
$OC_Build = '2024-01-01T00:00:00+00:00 abc';
$vendor = 'owncloud';
