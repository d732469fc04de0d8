-- The public security department's population database for the demo (fictitious people).
-- `cargo xtask demo` loads it into a local PostgreSQL and stores the connection URI in the
-- Secret `population-db` (key `uri`) that the catalog's items name.
create table household_registration (
  citizen_id text primary key,
  name text not null,
  household_address text not null,
  registered_on date not null,
  ethnicity text not null
);
insert into household_registration values
  ('110101199003070011', 'Zhao Lei', '3 Beixinqiao Lane, Dongcheng', '1990-03-07', 'Han'),
  ('110101198511120022', 'Qian Mei', '3 Beixinqiao Lane, Dongcheng', '2012-06-01', 'Han'),
  ('110102197702280033', 'Sun Hao', '18 Xisi South Street, Xicheng', '1977-02-28', 'Hui'),
  ('110108200105150044', 'Li Xia', '5 Haidian Road, Haidian', '2001-05-15', 'Manchu');
create table identity_photos (
  citizen_id text primary key,
  photo_sha256 text not null
);
insert into identity_photos values
  ('110101199003070011', '9f2b5c1e0d7a4a3b8c6e5f4d3c2b1a0998877665544332211ffeeddccbbaa99'),
  ('110102197702280033', '0a1b2c3d4e5f60718293a4b5c6d7e8f90123456789abcdef0123456789abcdef');
