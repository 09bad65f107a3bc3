// `segctl scripts push DIR | status`: the cluster-wide script set
// (segmenter/script_set/script_set.h). Linked into segctl when seg_script_set exists.
#pragma once

namespace seg::tools {

// argv[0] is "scripts".
int ScriptsMain(int argc, char** argv);

}  // namespace seg::tools
