<?php
$CONFIG = array(
  'logtimezone' => 'from 9',
  'theme' => 'mytheme',
  0 => 'an integer key, renumbered by array_merge',
);
