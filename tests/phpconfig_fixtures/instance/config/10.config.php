<?php
$CONFIG = array(
  'logtimezone' => 'from 10 (natsort puts it after 9)',
  'loglevel' => 2,
  5 => 'another integer key',
);
