<?php 
$OC_Version = array(10,15,2,0);
$OC_VersionString = '10.15.2';
$OC_Edition = 'Community';
$OC_Channel = 'stable';
$OC_VersionCanBeUpgradedFrom = array (
  'owncloud' => 
  array (
    '10.11' => true,
    '10.12' => true,
    '10.13' => true,
    '10.14' => true,
    '10.15' => true,
  ),
);
$OC_Build = '2024-10-23T09:07:49+00:00 fixture';
$vendor = 'owncloud';
