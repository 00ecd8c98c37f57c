# workstation.licenses: filled in by its issue; included by init.sls so the include list is final.
