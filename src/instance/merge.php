// ocmigrate's one PHP config merge: the config as ownCloud's Config::readData() builds it.
// MERGE_SNIPPET (src/instance/merge.rs) and the host programs' prelude (src/inventory/prelude.php)
// both start with this file; the Rust reader (src/instance/merge.rs) is tested against it.
// Only reads. Works on PHP 7.0 and later.

/** Why ocm_merge_config failed: code 2, a file failed in PHP; code 3, a file cannot be opened. */
class OcmConfigError extends Exception {}

/** Include one config file in a scope of its own; array($CONFIG) when it sets an array. */
function ocm_include_config($ocm_file) {
    unset($CONFIG);
    include $ocm_file;
    return (isset($CONFIG) && is_array($CONFIG)) ? array($CONFIG) : array();
}

/** The merged config of a config directory: config.php (skipped if absent), then
 *  glob('*.config.php') in natsort order, each included under a shared flock, $CONFIG
 *  array_merge'd when it is an array (directories matching the glob are skipped: ownCloud's
 *  include of one sets no $CONFIG). Returns array('files' => names read, in order,
 *  'output' => array(name => bytes the file echoed), 'config' => the merged array).
 *  Throws OcmConfigError. */
function ocm_merge_config($dir) {
    $dir = rtrim($dir, '/') . '/';
    if ($dir === '/' || !is_dir($dir)) {
        throw new OcmConfigError("not a directory: $dir", 3);
    }
    $main = $dir . 'config.php';
    $files = array($main);
    $extra = glob($dir . '*.config.php');
    if (is_array($extra)) {
        natsort($extra);
        $files = array_merge($files, $extra);
    }
    $cache = array();
    $read = array();
    $output = array();
    foreach ($files as $file) {
        if (($file === $main && !file_exists($file)) || is_dir($file)) {
            continue;
        }
        $fp = @fopen($file, 'r');
        if ($fp === false) {
            throw new OcmConfigError("cannot open $file", 3);
        }
        flock($fp, LOCK_SH);
        ob_start();
        try {
            $got = ocm_include_config($file);
        } catch (Throwable $e) {
            ob_end_clean();
            fclose($fp);
            throw new OcmConfigError(get_class($e) . ': ' . $e->getMessage() . ' in ' . $e->getFile() . ' on line ' . $e->getLine(), 2);
        }
        $echoed = ob_get_clean();
        flock($fp, LOCK_UN);
        fclose($fp);
        $name = basename($file);
        $read[] = $name;
        if ($echoed !== false && $echoed !== '') {
            $output[$name] = strlen($echoed);
        }
        if (count($got) === 1) {
            $cache = array_merge($cache, $got[0]);
        }
    }
    return array('files' => $read, 'output' => $output, 'config' => $cache);
}
