# packaging/docker-api-proxy.cfg in the HAProxy image: listening on a UNIX
# socket on the volume shared with dovetail, for the dovetail user (gid
# 10001), instead of TCP.
s|^\(\s*\)bind 127\.0\.0\.1:2375$|\1bind /var/lib/dovetail/docker-api.sock mode 660 gid 10001|
